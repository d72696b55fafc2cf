#!/usr/bin/env python3
"""PyTorch/diffusers baseline for the Flux.1-dev transformer forward, run side by side with `dit4j bench`.

Full-size FluxTransformer2DModel with random bf16 weights (initialised on the GPU, no checkpoint), one forward per
call at batch 1 with 512 text tokens, timed with CUDA events (median after warm-up), eager and torch.compile.

  python3 bench/flux_torch_baseline.py --resolutions 512 1024 2048 --compile 1024 --json $OUT/torch.json
  python3 bench/flux_torch_baseline.py --resolutions 1024 --save-dir /tmp/fluxref   # weights + inputs + output for
                                                                                    # dit4j's full-size exactness check
Needs diffusers on PYTHONPATH (not installed on the GPU machine: carry a source archive).
"""
import argparse
import json
import os
import statistics
import time

import torch


def flux_dev(device):
    from diffusers import FluxTransformer2DModel
    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = FluxTransformer2DModel(guidance_embeds=True)   # Flux.1-dev architecture
    torch.set_default_dtype(prev)
    return model.eval().requires_grad_(False)


def inputs(res, txt_len=512, device="cuda", seed=1):
    g = torch.Generator(device="cpu").manual_seed(seed)
    h = w = res // 16
    img = torch.randn(1, h * w, 64, generator=g).to(device, torch.bfloat16)
    txt = torch.randn(1, txt_len, 4096, generator=g).to(device, torch.bfloat16)
    pooled = torch.randn(1, 768, generator=g).to(device, torch.bfloat16)
    img_ids = torch.zeros(h, w, 3)
    img_ids[..., 1] = torch.arange(h)[:, None]
    img_ids[..., 2] = torch.arange(w)[None, :]
    img_ids = img_ids.reshape(h * w, 3).to(device)
    txt_ids = torch.zeros(txt_len, 3, device=device)
    t = torch.tensor([0.75], device=device, dtype=torch.bfloat16)
    guidance = torch.tensor([3.5], device=device, dtype=torch.bfloat16)
    return dict(hidden_states=img, encoder_hidden_states=txt, pooled_projections=pooled, timestep=t,
                img_ids=img_ids, txt_ids=txt_ids, guidance=guidance, return_dict=False)


def flops(res, txt_len=512, D=3072, mlp=12288, depth=19, single=38):
    n_img = (res // 16) ** 2
    L = n_img + txt_len
    lin_double = 2 * (n_img + txt_len) * (D * 3 * D + D * D + 2 * D * mlp)
    lin_single = 2 * L * (D * (3 * D + mlp) + (D + mlp) * D)
    attn = 4 * L * L * D
    return depth * (lin_double + attn) + single * (lin_single + attn)


def time_forward(fn, kw, warmup, iters):
    for _ in range(warmup):
        fn(**kw)
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn(**kw)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolutions", type=int, nargs="+", default=[1024])
    ap.add_argument("--compile", type=int, nargs="*", default=[], help="resolutions to also time under torch.compile")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--json", default=None)
    ap.add_argument("--save-dir", default=None, help="write weights (diffusers layout), inputs and output here")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = "cuda"
    t0 = time.time()
    model = flux_dev(dev)
    print(f"model ready in {time.time() - t0:.1f} s on {torch.cuda.get_device_name()}", flush=True)
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "runs": []}
    with torch.inference_mode():
        if a.save_dir:
            from safetensors.torch import save_file
            os.makedirs(a.save_dir, exist_ok=True)
            kw = inputs(a.resolutions[0])
            out = model(**kw)[0]
            t1 = time.time()
            save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                      os.path.join(a.save_dir, "diffusion_pytorch_model.safetensors"))
            # the same forward in float32 (weights upcast from the bf16 ones) as the accuracy yardstick for both
            model.float()
            kw32 = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in kw.items()}
            out32 = model(**kw32)[0]
            model.to(torch.bfloat16)
            err = ((out.float() - out32).norm() / out32.norm()).item()
            print(f"diffusers bf16 vs diffusers fp32 (same weights): rel-L2 {err:.3e}", flush=True)
            save_file({k: v.contiguous() for k, v in kw.items() if torch.is_tensor(v)}
                      | {"output": out.contiguous(), "output_f32": out32.contiguous()},
                      os.path.join(a.save_dir, "io.safetensors"))
            print(f"saved weights and io to {a.save_dir} in {time.time() - t1:.1f} s", flush=True)
        for res in a.resolutions:
            kw = inputs(res)
            torch.cuda.reset_peak_memory_stats()
            ms = time_forward(model, kw, a.warmup, a.iters)
            peak = torch.cuda.max_memory_allocated() / 1e9
            f = flops(res)
            row = {"resolution": res, "mode": "eager", "ms": ms, "tflops": f / ms / 1e9, "peak_gb": peak}
            results["runs"].append(row)
            print(json.dumps(row), flush=True)
        for res in a.compile:
            kw = inputs(res)
            cm = torch.compile(model)
            t1 = time.time()
            cm(**kw)
            torch.cuda.synchronize()
            ct = time.time() - t1
            ms = time_forward(cm, kw, a.warmup, a.iters)
            row = {"resolution": res, "mode": "torch.compile", "ms": ms, "tflops": flops(res) / ms / 1e9,
                   "compile_s": ct}
            results["runs"].append(row)
            print(json.dumps(row), flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
