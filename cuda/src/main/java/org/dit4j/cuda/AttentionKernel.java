package org.dit4j.cuda;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;

/**
 * The attention implementations of the CUDA backend, in order of preference. {@link #select} picks the first that
 * supports the call; a backend can also be pinned to one ({@link CudaBackend#setAttentionKernel}).
 */
public enum AttentionKernel {
    /**
     * cuDNN's fused flash attention (graph API, {@link org.dit4j.cuda.cudnn.CudnnSdpa}): BF16/F16, head dim 64 or
     * 128 (d = dv), no bias. Fastest on Hopper; off with {@code -Ddit4j.attention.cudnn=false}.
     */
    CUDNN_SDPA {
        @Override public String check(Tensor q, Tensor k, Tensor v, Tensor bias) {
            if (!Boolean.parseBoolean(System.getProperty("dit4j.attention.cudnn", "true"))) return "is disabled (-Ddit4j.attention.cudnn=false)";
            if (bias != null) return "takes no bias";
            String flash = FLASH_MMA.check(q, k, v, null);
            if (flash != null) return flash;
            if (q.dim(1) > Integer.MAX_VALUE || k.dim(1) > Integer.MAX_VALUE) return "needs sequences below 2^31";
            if (!org.dit4j.cuda.cudnn.Cudnn.isAvailable()) return "needs libcudnn.so.9, which is not installed";
            return null;
        }
    },
    /** FA2-style tensor-core kernel (mma.sync m16n8k16): BF16/F16, head dim 64 or 128 (d = dv), f32 bias. */
    FLASH_MMA {
        @Override public String check(Tensor q, Tensor k, Tensor v, Tensor bias) {
            DType t = q.dtype();
            if (t != DType.BF16 && t != DType.F16) return "needs BF16 or F16 q/k/v, got " + t;
            if (k.dtype() != t || v.dtype() != t) return "needs q, k, v of one dtype";
            long d = q.dim(3);
            if (d != 64 && d != 128) return "needs head dim 64 or 128, got " + d;
            if (v.dim(3) != d) return "needs dv = d";
            if ((q.address() | k.address() | v.address()) % 16 != 0) return "needs 16-byte aligned q, k, v";
            if (q.dim(2) > 65535 || q.dim(0) > 65535) return "needs at most 65535 heads and batches";
            return null;
        }
    },
    /** One warp per query row, any floating dtype, head dims up to 256. Slow; the reference. */
    REFERENCE {
        @Override public String check(Tensor q, Tensor k, Tensor v, Tensor bias) {
            if (q.dim(3) > 256 || v.dim(3) > 256) return "needs head dims ≤ 256";
            if (q.dtype() != k.dtype() || q.dtype() != v.dtype()) return "needs q, k, v of one dtype";
            if (q.dim(2) > 65535 || q.dim(0) > 65535) return "needs at most 65535 heads and batches";
            return null;
        }
    },
    /**
     * Two cuBLASLt products around a softmax kernel: any head dim — e.g. the VAE mid-block's single 512-wide head.
     * BF16/F16 without bias: bf16 products with f32 accumulation, f32 scores in chunks of query rows (bounded memory),
     * P rounded to the input type. Otherwise f32 products with the whole f32 score matrix in memory (B·H·Lq·Lk·4
     * bytes). The last resort.
     */
    GEMM {
        @Override public String check(Tensor q, Tensor k, Tensor v, Tensor bias) {
            DType t = q.dtype();
            if (bias == null && (t == DType.BF16 || t == DType.F16) && k.dtype() == t && v.dtype() == t) return null;   // chunked
            long scores = q.dim(0) * q.dim(2) * q.dim(1) * k.dim(1);
            if (scores > (1L << 31)) return "needs at most 2^31 attention scores (B·H·Lq·Lk), got " + scores;
            return null;
        }
    };

    /** Null when this kernel can run the call, else why not. Shapes are already validated ([B, L, H, d]). */
    public abstract String check(Tensor q, Tensor k, Tensor v, Tensor bias);

    /** The first kernel that supports the call. */
    public static AttentionKernel select(Tensor q, Tensor k, Tensor v, Tensor bias) {
        for (AttentionKernel a : values()) if (a.check(q, k, v, bias) == null) return a;
        throw new IllegalArgumentException("no CUDA attention kernel supports q " + q + ", k " + k + ", v " + v
                + ": " + GEMM.check(q, k, v, bias));
    }
}
