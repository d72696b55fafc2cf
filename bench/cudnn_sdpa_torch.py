"""PyTorch baseline for dit4j's cuDNN SDPA benchmark (run on the GPU machine, same call as the Java bench).

Times torch.nn.functional.scaled_dot_product_attention per backend on the same DiT shapes, with q/k/v laid out
as diffusers does ([B, L, H, d] memory viewed as [B, H, L, d]), bf16, non-causal, no mask. Median of 30
event-timed calls after 5 warm-ups. Also reports the rel-L2 of torch's cuDNN output vs an fp32 math reference
on 256 query rows, and the kernels torch's cuDNN backend launches.

usage: python3 cudnn_sdpa_torch.py [out.tsv] [B,H,L,d ...]
"""
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def median_ms(fn, n=30, warm=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(n):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return (ts[n // 2 - 1] + ts[n // 2]) / 2, ts[0]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else None
    shapes = [tuple(int(x) for x in s.split(",")) for s in sys.argv[2:]] or [
        (1, 24, 4608, 128), (1, 24, 16896, 128), (1, 24, 4608, 64)]
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, {torch.cuda.get_device_name()}")
    rows = ["shape\tbackend\tmedian_ms\tmin_ms\ttflops\trel_l2_256rows"]
    g = torch.Generator(device="cuda").manual_seed(0)
    for (B, H, L, d) in shapes:
        name = f"{B}x{H}x{L}x{d}"
        mk = lambda: torch.empty(B, L, H, d, device="cuda", dtype=torch.bfloat16).uniform_(-3 ** .5, 3 ** .5, generator=g)
        q, k, v = (x.transpose(1, 2) for x in (mk(), mk(), mk()))  # [B, H, L, d] views of [B, L, H, d] memory
        flops = 4.0 * B * H * L * L * d
        qs = q[:, :, :256].float()
        ref = torch.softmax((qs @ k.float().transpose(-1, -2)) / d ** .5, dim=-1) @ v.float()
        for backend in (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
            try:
                with sdpa_kernel(backend):
                    o = F.scaled_dot_product_attention(q, k, v)
                    err = ((o[:, :, :256].float() - ref).norm() / ref.norm()).item()
                    med, mn = median_ms(lambda: F.scaled_dot_product_attention(q, k, v))
                row = f"{name}\t{backend.name}\t{med:.4f}\t{mn:.4f}\t{flops / med / 1e9:.1f}\t{err:.2e}"
            except Exception as e:  # a backend that refuses this shape
                row = f"{name}\t{backend.name}\t-\t-\t-\tunsupported: {str(e).splitlines()[0][:120]}"
            print(row)
            rows.append(row)
        if (B, H, L, d) == shapes[0]:
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                    F.scaled_dot_product_attention(q, k, v)
                    torch.cuda.synchronize()
            names = sorted({e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA})
            line = f"# torch cuDNN kernels at {name}: " + " | ".join(names)
            print(line)
            rows.append(line)
        del q, k, v, ref
        torch.cuda.empty_cache()
    if out:
        open(out, "w").write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
