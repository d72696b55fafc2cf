package org.dit4j.engine;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.cuda.Cuda;
import org.dit4j.cuda.CudaBackend;

/** Picks and opens a backend by name: {@code auto} (CUDA when usable, else CPU), {@code cpu}, {@code cuda}, {@code cuda:N}. */
public final class Backends {
    private Backends() {}

    public static Ops open(String spec) {
        String s = spec == null ? "auto" : spec.trim().toLowerCase();
        if (s.equals("auto")) return Cuda.isAvailable() ? new CudaBackend(0) : new CpuBackend();
        if (s.equals("cpu")) return new CpuBackend();
        if (s.equals("cuda") || s.startsWith("cuda:")) {
            String why = Cuda.unavailableReason();
            if (why != null) throw new IllegalStateException("backend '" + spec + "' was asked for, but " + why);
            int index = s.equals("cuda") ? 0 : parseIndex(spec, s.substring(5));
            return new CudaBackend(index);
        }
        throw new IllegalArgumentException("unknown backend '" + spec + "': use auto, cpu, cuda or cuda:N");
    }

    /** Why no GPU can be used (null when one can). */
    public static String unavailableReason() { return Cuda.unavailableReason(); }

    /** True when {@code auto} would choose a GPU. */
    public static boolean gpuAvailable() { return Cuda.isAvailable(); }

    private static int parseIndex(String spec, String idx) {
        try {
            return Integer.parseInt(idx);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("backend '" + spec + "': the device index must be a number, as in cuda:1");
        }
    }
}
