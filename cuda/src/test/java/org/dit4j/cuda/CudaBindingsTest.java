package org.dit4j.cuda;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The thin bindings, one library at a time. The first two tests run everywhere; the rest need a GPU. */
class CudaBindingsTest {

    @Test void missingLibraryErrorListsWhatWasSearched() {
        CudaException e = assertThrows(CudaException.class,
                () -> CudaLibraries.find("TEST", "libdit4j-no-such-library.so.7"));
        String m = e.getMessage();
        assertTrue(m.contains("libdit4j-no-such-library.so.7 (system loader path)"), m);
        assertTrue(m.contains("DIT4J_CUDA_LIBS"), m);
        assertTrue(m.contains("Searched:"), m);
    }

    @Test void archNamesAndSizeClasses() {
        assertEquals("sm_90a", KernelCache.archName(9, 0));
        assertEquals("sm_89", KernelCache.archName(8, 9));
        assertEquals("sm_100a", KernelCache.archName(10, 0));
        assertEquals(512, DeviceAllocator.sizeClass(1));
        assertEquals(1024, DeviceAllocator.sizeClass(513));
        assertEquals(2L << 20, DeviceAllocator.sizeClass((1L << 20) + 1));
        assertEquals(4L << 20, DeviceAllocator.sizeClass((2L << 20) + 1));
        assertEquals(64, Gemm.alignment(64, 128, 192));
        assertEquals(256, Gemm.alignment(0, 256, 1024));
    }

    @Test void driverMemoryAndEvents() {
        CudaTestSupport.requireCuda();
        CudaDriver d = CudaDriver.get();
        assertTrue(d.driverVersion() >= 12000, "driver version " + d.driverVersion());
        int dev = d.device(0);
        long ctx = d.primaryContextRetain(dev);
        try (Arena a = Arena.ofConfined()) {
            d.contextSetCurrent(ctx);
            assertTrue(d.deviceAttribute(dev, CudaDriver.ATTR_MULTIPROCESSOR_COUNT) > 0);
            long stream = d.streamCreate(CudaDriver.STREAM_NON_BLOCKING);
            long p = d.memAlloc(4096);
            d.memsetD32Async(p, Float.floatToRawIntBits(1.5f), 1024, stream);
            MemorySegment pinned = d.memHostAlloc(4096, CudaDriver.MEMHOSTALLOC_PORTABLE);
            long e0 = d.eventCreate(CudaDriver.EVENT_DEFAULT), e1 = d.eventCreate(CudaDriver.EVENT_DEFAULT);
            d.eventRecord(e0, stream);
            d.memcpyDtoHAsync(pinned, p, 4096, stream);
            d.eventRecord(e1, stream);
            d.streamSynchronize(stream);
            assertTrue(d.eventQuery(e1));
            assertTrue(d.eventElapsedMs(e0, e1) >= 0);
            for (int i = 0; i < 1024; i++) assertEquals(1.5f, pinned.getAtIndex(ValueLayout.JAVA_FLOAT, i));
            CudaException err = assertThrows(CudaException.class, () -> d.memAlloc(1L << 50));
            assertTrue(err.getMessage().contains("cuMemAlloc"), err.getMessage());
            assertTrue(err.getMessage().contains("CUDA_ERROR_OUT_OF_MEMORY"), err.getMessage());
            d.memFreeHost(pinned);
            d.memFree(p);
            d.eventDestroy(e0);
            d.eventDestroy(e1);
            d.streamDestroy(stream);
        } finally {
            d.primaryContextRelease(dev);
        }
    }

    @Test void nvrtcCompilesLaunchesAndReportsErrors() {
        CudaTestSupport.requireCuda();
        CudaDriver d = CudaDriver.get();
        int dev = d.device(0);
        long ctx = d.primaryContextRetain(dev);
        try (Arena a = Arena.ofConfined()) {
            d.contextSetCurrent(ctx);
            String arch = KernelCache.archName(d.deviceAttribute(dev, CudaDriver.ATTR_COMPUTE_CAPABILITY_MAJOR),
                    d.deviceAttribute(dev, CudaDriver.ATTR_COMPUTE_CAPABILITY_MINOR));
            String src = "extern \"C\" __global__ void twice(float* x, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] *= 2.f; }";
            Nvrtc.Compiled c = Nvrtc.get().compile(src, "twice.cu", List.of("--gpu-architecture=" + arch));
            assertTrue(c.cubin().length > 100);
            MemorySegment img = a.allocate(c.cubin().length);
            MemorySegment.copy(c.cubin(), 0, img, ValueLayout.JAVA_BYTE, 0, c.cubin().length);
            long mod = d.moduleLoadData(img);
            long fn = d.moduleGetFunction(mod, "twice");
            long p = d.memAlloc(1000 * 4);
            d.memsetD32Async(p, Float.floatToRawIntBits(3f), 1000, 0);
            KernelArgs args = new KernelArgs(a);
            args.reset().ptr(p).i32(1000);
            d.launchKernel(fn, 4, 1, 1, 256, 1, 1, 0, 0, args.pointers(), "twice");
            MemorySegment out = a.allocate(4000);
            d.memcpyDtoHAsync(out, p, 4000, 0);
            d.contextSynchronize();
            for (int i = 0; i < 1000; i++) assertEquals(6f, out.getAtIndex(ValueLayout.JAVA_FLOAT, i));
            d.memFree(p);
            d.moduleUnload(mod);
            CudaException e = assertThrows(CudaException.class,
                    () -> Nvrtc.get().compile("extern \"C\" __global__ void bad() { undefined_thing(); }", "bad.cu",
                            List.of("--gpu-architecture=" + arch)));
            assertTrue(e.getMessage().contains("bad.cu") && e.getMessage().contains("undefined_thing"), e.getMessage());
        } finally {
            d.primaryContextRelease(dev);
        }
    }
}
