#!/usr/bin/env python3
"""diffusers baseline for the Flux VAE, run beside `VaeBench` (engine bench classes).

Full-size AutoencoderKL with the Flux configuration (block channels 128/256/512/512, 2 layers per block, 16 latent
channels, no quant convs), random weights initialised on the GPU, bf16, eager. Decode of a [1, 16, r/8, r/8] latent and
encode (moments: mean and log-variance) of a [1, 3, r, r] image; CUDA-event medians after warm-up; peak allocated memory.

  python3 bench/vae_torch_baseline.py --resolution 1024 --iters 10 --json $OUT/vae_torch.json [--profile]
  python3 bench/vae_torch_baseline.py --resolution 64 --iters 2 --device cpu        # quick check on a CPU
Needs diffusers on PYTHONPATH (not installed on the GPU machine: carry a source archive).
"""
import argparse
import json
import statistics

import torch


def flux_vae(device, dtype):
    from diffusers import AutoencoderKL
    torch.manual_seed(0)
    with torch.device(device):
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
                            use_quant_conv=False, use_post_quant_conv=False)
    return vae.to(dtype).eval().requires_grad_(False)


def timed(fn, warmup, iters, device):
    for _ in range(warmup):
        fn()
    if device == "cpu":
        import time
        ts = []
        for _ in range(iters):
            t = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t) * 1e3)
        return statistics.median(ts)
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--resolution", type=int, default=1024)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--device", default="cuda")
    p.add_argument("--json")
    p.add_argument("--profile", action="store_true", help="print the top kernels of one decode (torch.profiler)")
    a = p.parse_args()
    dev = a.device
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32   # CPU bf16 convolutions are very slow
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    vae = flux_vae(dev, dtype)
    lat = a.resolution // 8
    g = torch.Generator(device="cpu").manual_seed(1)
    z = torch.randn(1, 16, lat, lat, generator=g).to(dev, dtype)
    x = (torch.rand(1, 3, a.resolution, a.resolution, generator=g) * 2 - 1).to(dev, dtype)
    res = {"device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "torch": torch.__version__,
           "resolution": a.resolution}
    with torch.inference_mode():
        for name, fn in (("decode", lambda: vae.decode(z).sample),
                         ("encode", lambda: vae.encode(x).latent_dist.parameters)):
            if dev == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            ms = timed(fn, 2, a.iters, dev)
            peak = torch.cuda.max_memory_allocated() / 1e9 if dev == "cuda" else float("nan")
            res[name + "_ms"] = ms
            res[name + "_peak_gb"] = peak
            print(f"diffusers {name} {a.resolution}²: median {ms:.1f} ms, peak {peak:.2f} GB", flush=True)
        if a.profile and dev == "cuda":
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                vae.decode(z)
                torch.cuda.synchronize()
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=90))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
