package org.dit4j.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.List;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/** Typed bindings of NVRTC, the CUDA run-time compiler: source in, CUBIN for one architecture out. */
public final class Nvrtc {
    private static volatile Nvrtc instance;

    private final MethodHandle nvrtcGetErrorString, nvrtcVersion, nvrtcCreateProgram, nvrtcDestroyProgram,
            nvrtcCompileProgram, nvrtcGetProgramLogSize, nvrtcGetProgramLog, nvrtcGetCUBINSize, nvrtcGetCUBIN;

    private Nvrtc() {
        CudaDriver.Binder b = new CudaDriver.Binder(java.lang.foreign.Linker.nativeLinker(),
                CudaLibraries.load(CudaLibraries.Lib.NVRTC));
        nvrtcGetErrorString = b.fnRet("nvrtcGetErrorString", ADDRESS, JAVA_INT);
        nvrtcVersion = b.fn("nvrtcVersion", ADDRESS, ADDRESS);
        nvrtcCreateProgram = b.fn("nvrtcCreateProgram", ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
        nvrtcDestroyProgram = b.fn("nvrtcDestroyProgram", ADDRESS);
        nvrtcCompileProgram = b.fn("nvrtcCompileProgram", JAVA_LONG, JAVA_INT, ADDRESS);
        nvrtcGetProgramLogSize = b.fn("nvrtcGetProgramLogSize", JAVA_LONG, ADDRESS);
        nvrtcGetProgramLog = b.fn("nvrtcGetProgramLog", JAVA_LONG, ADDRESS);
        nvrtcGetCUBINSize = b.fn("nvrtcGetCUBINSize", JAVA_LONG, ADDRESS);
        nvrtcGetCUBIN = b.fn("nvrtcGetCUBIN", JAVA_LONG, ADDRESS);
    }

    public static Nvrtc get() {
        Nvrtc n = instance;
        if (n == null) {
            synchronized (Nvrtc.class) {
                n = instance;
                if (n == null) instance = n = new Nvrtc();
            }
        }
        return n;
    }

    /** The result of one compilation: the CUBIN image and the compiler's log (warnings). */
    public record Compiled(byte[] cubin, String log) {}

    public String errorString(int res) {
        try {
            MemorySegment p = (MemorySegment) nvrtcGetErrorString.invokeExact(res);
            return p.reinterpret(512).getString(0);
        } catch (Throwable t) {
            return "unknown NVRTC error";
        }
    }

    private void check(int res, String call) {
        if (res != 0) throw new CudaException(call + " failed: NVRTC error " + res + ": " + errorString(res), res);
    }

    /** NVRTC version as {major, minor}. */
    public int[] version() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ma = a.allocate(JAVA_INT), mi = a.allocate(JAVA_INT);
            check((int) nvrtcVersion.invokeExact(ma, mi), "nvrtcVersion");
            return new int[] {ma.get(JAVA_INT, 0), mi.get(JAVA_INT, 0)};
        } catch (Throwable t) { throw CudaDriver.wrap("nvrtcVersion", t); }
    }

    /**
     * Compiles {@code source} (named {@code name} in messages) with {@code options}; the options must name a real
     * architecture ({@code --gpu-architecture=sm_90a}) so that a CUBIN is produced. A compile error throws a
     * CudaException holding the full compiler log.
     */
    public Compiled compile(String source, String name, List<String> options) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment progOut = a.allocate(JAVA_LONG);
            check((int) nvrtcCreateProgram.invokeExact(progOut, a.allocateFrom(source), a.allocateFrom(name), 0,
                    MemorySegment.NULL, MemorySegment.NULL), "nvrtcCreateProgram(" + name + ")");
            long prog = progOut.get(JAVA_LONG, 0);
            try {
                MemorySegment opts = a.allocate(ADDRESS, Math.max(1, options.size()));
                for (int i = 0; i < options.size(); i++) opts.setAtIndex(ADDRESS, i, a.allocateFrom(options.get(i)));
                int res = (int) nvrtcCompileProgram.invokeExact(prog, options.size(), opts);
                String log = log(a, prog);
                if (res != 0) {
                    throw new CudaException("nvrtcCompileProgram(" + name + ") failed: " + errorString(res)
                            + "\noptions: " + options + "\n" + log, res);
                }
                MemorySegment size = a.allocate(JAVA_LONG);
                check((int) nvrtcGetCUBINSize.invokeExact(prog, size), "nvrtcGetCUBINSize(" + name + ")");
                long n = size.get(JAVA_LONG, 0);
                if (n == 0) throw new CudaException("NVRTC produced no CUBIN for " + name + "; the options " + options
                        + " must name a real architecture such as --gpu-architecture=sm_90a");
                MemorySegment bin = a.allocate(n);
                check((int) nvrtcGetCUBIN.invokeExact(prog, bin), "nvrtcGetCUBIN(" + name + ")");
                return new Compiled(bin.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), log);
            } finally {
                progOut.set(JAVA_LONG, 0, prog);
                int ignored = (int) nvrtcDestroyProgram.invokeExact(progOut);
            }
        } catch (Throwable t) { throw CudaDriver.wrap("nvrtcCompileProgram", t); }
    }

    private String log(Arena a, long prog) throws Throwable {
        MemorySegment size = a.allocate(JAVA_LONG);
        check((int) nvrtcGetProgramLogSize.invokeExact(prog, size), "nvrtcGetProgramLogSize");
        long n = size.get(JAVA_LONG, 0);
        if (n <= 1) return "";
        MemorySegment buf = a.allocate(n);
        check((int) nvrtcGetProgramLog.invokeExact(prog, buf), "nvrtcGetProgramLog");
        return buf.getString(0);
    }
}
