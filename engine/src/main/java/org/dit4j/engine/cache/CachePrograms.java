package org.dit4j.engine.cache;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

import org.dit4j.core.ops.ForwardingOps;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaGraph;

/**
 * What every model's cached transformer (Flux, Wan) runs its stages with: {@link Program}s that run eagerly once and are
 * then captured as CUDA graphs and replayed, and the buffer copies those programs may contain — into fixed device
 * tensors, and between a device buffer and a residual kept in pinned host memory.
 */
public final class CachePrograms {
    private CachePrograms() {}

    /** A program over fixed tensors: eager, or on CUDA eager once, then captured and replayed. */
    public static final class Program implements AutoCloseable {
        private final String name;
        private final Runnable body;
        private final CudaBackend cuda;
        private int runs;
        private CudaGraph graph;

        /**
         * @param name what the error of a failed capture names, e.g. "tail cond program of the Flux step cache"
         * @param cuda the backend to capture on, or null to run eagerly every time
         */
        public Program(String name, Runnable body, CudaBackend cuda) {
            this.name = Objects.requireNonNull(name, "name");
            this.body = Objects.requireNonNull(body, "body");
            this.cuda = cuda;
        }

        public void run() {
            if (cuda == null || runs == 0) {
                body.run();                                   // eager (on CUDA: compiles kernels, caches GEMM plans)
            } else {
                if (graph == null) {
                    try {
                        graph = CudaGraph.capture(cuda, body);
                    } catch (RuntimeException e) {
                        throw new IllegalStateException("capturing the " + name + " as a CUDA graph failed: " + e.getMessage()
                                + " (run without graphs: --no-compile)", e);
                    }
                }
                graph.replay();
            }
            runs++;
        }

        /** Whether this program replays a captured graph. */
        public boolean usesGraph() { return graph != null; }

        @Override public void close() {
            if (graph != null) graph.close();
            graph = null;
        }
    }

    /** The CUDA backend under any {@link ForwardingOps} decorators, or null. */
    public static CudaBackend cudaOf(Ops ops) {
        Ops o = ops;
        while (o instanceof ForwardingOps f) o = f.delegate();
        return o instanceof CudaBackend cb ? cb : null;
    }

    /** A host tensor for a residual kept off the GPU: pinned on a CUDA backend (graphs can copy it), plain on the CPU. */
    public static Tensor hostResidual(Ops ops, DType dtype, Shape shape) {
        CudaBackend cb = cudaOf(ops);
        if (cb != null) return cb.pinnedHost(dtype, shape);
        if (!ops.device().isCpu())
            throw new UnsupportedOperationException("residuals in host memory need a CUDA or CPU backend, got " + ops.name());
        return Tensor.zeros(dtype, shape);
    }

    /** dst ← src between a device buffer and a host residual (async on CUDA, a memory copy on the CPU). */
    public static void copyBetween(Ops ops, Tensor dst, Tensor src) {
        CudaBackend cb = cudaOf(ops);
        if (cb != null) cb.copyPinned(dst, src);
        else MemorySegment.copy(src.segment(), 0, dst.segment(), 0, dst.byteSize());
    }

    /** A non-owning handle on a buffer (what a {@link CacheRun} holds; closing it does nothing). */
    public static Tensor borrowed(Tensor t) { return t.view(t.shape()); }

    /**
     * Copies src into the existing tensor dst (same dtype and element count): a device copy on CUDA (capturable), a
     * memory copy on the host.
     */
    public static void copyInto(Ops ops, Tensor dst, Tensor src) {
        if (dst.dtype() != src.dtype() || dst.numel() != src.numel())
            throw new IllegalArgumentException("copyInto needs the same dtype and size: dst " + dst + ", src " + src);
        CudaBackend cb = cudaOf(ops);
        if (cb != null) {
            cb.copyInto(dst, src);
        } else if (dst.device().isCpu() && src.device().isCpu()) {
            MemorySegment.copy(src.segment(), 0, dst.segment(), 0, dst.byteSize());
        } else {
            throw new UnsupportedOperationException("copying into an existing tensor on " + dst.device() + " is not supported by "
                    + ops.name());
        }
    }
}
