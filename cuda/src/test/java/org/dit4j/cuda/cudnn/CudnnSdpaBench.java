package org.dit4j.cuda.cudnn;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.AttentionKernel;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaDriver;
import org.dit4j.cuda.cudnn.CudnnSdpa.Implementation;
import org.dit4j.cuda.cudnn.CudnnSdpa.Shape;

/**
 * Times cuDNN fused attention on DiT shapes: for each shape and each implementation, the best few engine
 * configurations cuDNN's heuristics offer. Correctness first (NaN-poisoned output fully written, rel-L2 of
 * 64 random rows vs float64 ≤ 1e-2), then the median of 50 event-timed runs after 5 warm-ups.
 *
 * <p>Usage: {@code CudnnSdpaBench [results.tsv] [B,H,L,d ...]}; defaults are Flux 1024² and 2048².
 */
public final class CudnnSdpaBench {
    public static void main(String[] args) throws IOException {
        Path out = args.length > 0 ? Path.of(args[0]) : null;
        List<int[]> shapes = new ArrayList<>();
        for (int i = 1; i < args.length; i++) shapes.add(Arrays.stream(args[i].split(",")).mapToInt(Integer::parseInt).toArray());
        if (shapes.isEmpty()) {
            shapes.add(new int[] {1, 24, 4608, 128});
            shapes.add(new int[] {1, 24, 16896, 128});
            shapes.add(new int[] {1, 24, 4608, 64});
        }
        String why = Gpu.unavailableReason();
        if (why != null) {
            System.out.println("no GPU or no cuDNN: " + why);
            System.exit(2);
        }
        CudaDriver cuda = Gpu.driver();
        Cudnn cudnn = Cudnn.get();
        System.out.println("device " + cuda.deviceName(cuda.device(0)) + ", cuDNN " + cudnn.version() + " from "
                + cudnn.libraryLocation());
        List<String> rows = new ArrayList<>();
        rows.add("shape\timpl\tengine\tworkspace_B\tbuild_ms\trel_l2\tmedian_ms\tmin_ms\ttflops\tkernel");
        boolean failed = false;
        long stream = cuda.streamCreate(CudaDriver.STREAM_NON_BLOCKING);
        long e0 = cuda.eventCreate(CudaDriver.EVENT_DEFAULT), e1 = cuda.eventCreate(CudaDriver.EVENT_DEFAULT);
        for (int[] sh : shapes) {
            Shape shape = Shape.bshd(sh[0], sh[1], sh[2], sh[2], sh[3], DType.BF16);
            String name = sh[0] + "x" + sh[1] + "x" + sh[2] + "x" + sh[3];
            try (CudnnSdpa sdpa = new CudnnSdpa(cudnn); AttentionCase c = new AttentionCase(cuda, shape, 1234)) {
                for (Implementation impl : new Implementation[] {Implementation.UNIFIED, Implementation.COMPOSITE}) {
                    List<CudnnSdpa.Plan> plans;
                    try {
                        plans = sdpa.candidates(shape, impl, 3);
                    } catch (CudnnException e) {
                        System.out.println(name + " " + impl + ": no plan: " + e.getMessage());
                        rows.add(name + "\t" + impl + "\t-\t-\t-\t-\t-\t-\tunsupported");
                        continue;
                    }
                    for (CudnnSdpa.Plan plan : plans) {
                        long ws = plan.workspaceSize() > 0 ? cuda.memAlloc(plan.workspaceSize()) : 0;
                        c.poisonOutput();
                        plan.execute(c.dq, c.dk, c.dv, c.dout, ws, stream);
                        cuda.streamSynchronize(stream);
                        MemorySegment o = c.output();
                        long bad = c.nonFinite(o);
                        double err = c.relL2(o, c.randomRows(64, 99));
                        boolean ok = bad == 0 && err <= 1e-2;
                        failed |= !ok;
                        for (int i = 0; i < 5; i++) plan.execute(c.dq, c.dk, c.dv, c.dout, ws, stream);
                        int n = 50;
                        float[] ms = new float[n];
                        for (int i = 0; i < n; i++) {
                            cuda.eventRecord(e0, stream);
                            plan.execute(c.dq, c.dk, c.dv, c.dout, ws, stream);
                            cuda.eventRecord(e1, stream);
                            cuda.eventSynchronize(e1);
                            ms[i] = cuda.eventElapsedMs(e0, e1);
                        }
                        Arrays.sort(ms);
                        double med = (ms[n / 2 - 1] + ms[n / 2]) / 2.0;
                        double tflops = shape.flops() / (med * 1e-3) / 1e12;
                        String row = String.format("%s\t%s\t%d\t%d\t%.1f\t%.2e\t%.4f\t%.4f\t%.1f\t%s%s", name, impl,
                                plan.engineIndex(), plan.workspaceSize(), plan.buildMillis(), err, med, ms[0], tflops,
                                plan.kernelName(), ok ? "" : "\tWRONG(nonfinite=" + bad + ")");
                        System.out.println(row);
                        rows.add(row);
                        if (out != null) {
                            String json = plan.describe();
                            Files.writeString(out.resolveSibling("plans.txt"), name + " " + impl + " engine "
                                    + plan.engineIndex() + ": " + (json == null ? "(no json)" : json) + "\n",
                                    StandardOpenOption.CREATE, StandardOpenOption.APPEND);
                        }
                        if (ws != 0) cuda.memFree(ws);
                    }
                }
                CudnnSdpa.Tuning t = sdpa.tune(shape, c.dq, c.dk, c.dv, c.dout, stream, 24);
                for (CudnnSdpa.Candidate cd : t.candidates()) {
                    String line = String.format("#  tune %s %s engine %d cfg %d %s %.4f ms diff %.1e%s", name,
                            cd.implementation(), cd.engine(), cd.kernelCfg(), cd.kernel(), cd.medianMs(), cd.relDiff(),
                            cd.accepted() ? "" : " REJECTED");
                    System.out.println(line);
                    rows.add(line);
                }
                CudnnSdpa.Plan best = t.best();
                long ws = best.workspaceSize() > 0 ? cuda.memAlloc(best.workspaceSize()) : 0;
                c.poisonOutput();
                best.execute(c.dq, c.dk, c.dv, c.dout, ws, stream);
                cuda.streamSynchronize(stream);
                MemorySegment o = c.output();
                long bad = c.nonFinite(o);
                double err = c.relL2(o, c.randomRows(64, 98));
                boolean ok = bad == 0 && err <= 1e-2;
                failed |= !ok;
                int n = 50;
                float[] ms = new float[n];
                for (int i = 0; i < 5; i++) best.execute(c.dq, c.dk, c.dv, c.dout, ws, stream);
                for (int i = 0; i < n; i++) {
                    cuda.eventRecord(e0, stream);
                    best.execute(c.dq, c.dk, c.dv, c.dout, ws, stream);
                    cuda.eventRecord(e1, stream);
                    cuda.eventSynchronize(e1);
                    ms[i] = cuda.eventElapsedMs(e0, e1);
                }
                Arrays.sort(ms);
                double med = (ms[n / 2 - 1] + ms[n / 2]) / 2.0;
                String row = String.format("%s\tTUNED(%s)\t%d\t%d\t-\t%.2e\t%.4f\t%.4f\t%.1f\t%s%s", name,
                        best.implementation(), best.engineIndex(), best.workspaceSize(), err, med, ms[0],
                        shape.flops() / (med * 1e-3) / 1e12, best.kernelName(), ok ? "" : "\tWRONG(nonfinite=" + bad + ")");
                System.out.println(row);
                rows.add(row);
                if (ws != 0) cuda.memFree(ws);
            }
        }
        // The cuda module's own flash-attention kernel (CudaBackend, FLASH_MMA) on the same inputs, for the choice
        // between the two ("whichever is faster").
        try (CudaBackend be = new CudaBackend()) {
            be.setAttentionKernel(AttentionKernel.FLASH_MMA);
            for (int[] sh : shapes) {
                Shape shape = Shape.bshd(sh[0], sh[1], sh[2], sh[2], sh[3], DType.BF16);
                String name = sh[0] + "x" + sh[1] + "x" + sh[2] + "x" + sh[3];
                try (AttentionCase c = new AttentionCase(cuda, shape, 1234)) {
                    org.dit4j.core.tensor.Shape bshd = org.dit4j.core.tensor.Shape.of(sh[0], sh[2], sh[1], sh[3]);
                    try (Tensor q = be.empty(DType.BF16, bshd); Tensor k = be.empty(DType.BF16, bshd);
                         Tensor v = be.empty(DType.BF16, bshd)) {
                        cuda.memcpyDtoDAsync(q.address(), c.dq, shape.qBytes(), be.stream());
                        cuda.memcpyDtoDAsync(k.address(), c.dk, shape.kvBytes(), be.stream());
                        cuda.memcpyDtoDAsync(v.address(), c.dv, shape.kvBytes(), be.stream());
                        c.poisonOutput();
                        try (Tensor o = be.attention(q, k, v, null, shape.scale())) {
                            cuda.memcpyDtoDAsync(c.dout, o.address(), shape.qBytes(), be.stream());
                        }
                        cuda.streamSynchronize(be.stream());
                        MemorySegment got = c.output();
                        long bad = c.nonFinite(got);
                        double err = c.relL2(got, c.randomRows(64, 99));
                        for (int i = 0; i < 3; i++) be.attention(q, k, v, null, shape.scale()).close();
                        int n = 20;
                        float[] ms = new float[n];
                        for (int i = 0; i < n; i++) {
                            cuda.eventRecord(e0, be.stream());
                            Tensor o = be.attention(q, k, v, null, shape.scale());
                            cuda.eventRecord(e1, be.stream());
                            cuda.eventSynchronize(e1);
                            ms[i] = cuda.eventElapsedMs(e0, e1);
                            o.close();
                        }
                        Arrays.sort(ms);
                        double med = (ms[n / 2 - 1] + ms[n / 2]) / 2.0;
                        String row = String.format("%s\tFLASH_MMA(cuda module)\t-\t-\t-\t%.2e\t%.4f\t%.4f\t%.1f\tflash_attention.cu%s",
                                name, err, med, ms[0], shape.flops() / (med * 1e-3) / 1e12,
                                bad == 0 && err <= 1e-2 ? "" : "\tWRONG(nonfinite=" + bad + ")");
                        System.out.println(row);
                        rows.add(row);
                    }
                }
            }
        } catch (RuntimeException e) {
            System.out.println("FLASH_MMA comparison failed: " + e);
            rows.add("# FLASH_MMA comparison failed: " + e);
        }
        Gpu.driver();   // our context current again

        // The cached AUTO plan path, with a per-call overhead figure (host time per execute, launches queued).
        Shape flux = Shape.bshd(1, 24, 4608, 4608, 128, DType.BF16);
        try (CudnnSdpa sdpa = new CudnnSdpa(cudnn); AttentionCase c = new AttentionCase(cuda, flux, 5)) {
            long t0 = System.nanoTime();
            CudnnSdpa.Plan p = sdpa.plan(flux);
            double buildMs = (System.nanoTime() - t0) / 1e6;
            long ws = p.workspaceSize() > 0 ? cuda.memAlloc(p.workspaceSize()) : 0;
            for (int i = 0; i < 10; i++) sdpa.execute(flux, c.dq, c.dk, c.dv, c.dout, ws, stream);
            cuda.streamSynchronize(stream);
            int n = 200;
            long h0 = System.nanoTime();
            for (int i = 0; i < n; i++) sdpa.execute(flux, c.dq, c.dk, c.dv, c.dout, ws, stream);
            long h1 = System.nanoTime();
            cuda.streamSynchronize(stream);
            String line = String.format("AUTO plan: %s, first build %.1f ms, host enqueue %.1f us/call", p, buildMs, (h1 - h0) / 1e3 / n);
            System.out.println(line);
            rows.add("# " + line);
            if (ws != 0) cuda.memFree(ws);
        }
        if (out != null) Files.write(out, rows);
        System.out.println(failed ? "SOME CHECKS FAILED" : "ALL CHECKS PASSED");
        System.exit(failed ? 1 : 0);
    }
}
