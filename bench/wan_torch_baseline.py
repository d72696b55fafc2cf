#!/usr/bin/env python3
"""PyTorch/diffusers baseline for the Wan2.1 transformer forward, run side by side with `dit4j bench --model wan-*`.

Full-size WanTransformer3DModel with random bf16 weights (built and initialised on the GPU, no checkpoint), one forward
per call at batch 1 (no CFG) with 512 text tokens, timed with CUDA events (median after warm-up), eager. As
from_pretrained(torch_dtype=bfloat16) would hold it, the modules in _keep_in_fp32_modules (rope, time_embedder,
scale_shift_table, norm1/2/3) are float32, the rest bf16.

  python3 bench/wan_torch_baseline.py --model wan-1.3b --json $OUT/torch-wan-1.3b.json        # 832x480x81
  python3 bench/wan_torch_baseline.py --model wan-14b --iters 5 --json $OUT/torch-wan-14b.json  # 640x640x65
  python3 bench/wan_torch_baseline.py --model wan-1.3b --frames 81 --save-dir /tmp/wanref --iters 0
      # weights (diffusers layout) + inputs + bf16 and fp32 outputs for dit4j's full-size exactness check
  python3 bench/wan_torch_baseline.py --model tiny --device cpu --save-dir /tmp/wantiny   # CPU validation

Random init: every parameter normal(0, 0.02), except norm scales 1 + normal(0, 0.02) and the scale_shift_tables
normal(0, 1/sqrt(D)) (diffusers' own init of those). Needs diffusers on PYTHONPATH (not installed on the GPU machine:
carry a source archive).
"""
import argparse
import json
import math
import os
import statistics
import time

import torch

KEEP_F32 = ("rope", "time_embedder", "scale_shift_table", "norm1", "norm2", "norm3")   # _keep_in_fp32_modules

CONFIGS = {
    # heads, head dim, layers, ffn, text dim, default (width, height, frames)
    "wan-1.3b": dict(num_attention_heads=12, attention_head_dim=128, num_layers=30, ffn_dim=8960, text_dim=4096,
                     size=(832, 480, 81)),
    "wan-14b": dict(num_attention_heads=40, attention_head_dim=128, num_layers=40, ffn_dim=13824, text_dim=4096,
                    size=(640, 640, 65)),
    # dit4j's WanBench.reducedConfig(): for validating this script on the CPU
    "tiny": dict(num_attention_heads=2, attention_head_dim=64, num_layers=2, ffn_dim=256, text_dim=64, size=(64, 64, 5)),
}


def build(name, device, seed=0):
    from diffusers import WanTransformer3DModel
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed
    c = {k: v for k, v in CONFIGS[name].items() if k != "size"}
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = WanTransformer3DModel(patch_size=(1, 2, 2), in_channels=16, out_channels=16, freq_dim=256,
                                          cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, **c)
    finally:
        torch.set_default_dtype(prev)
    # the RoPE tables as a float32-default construction makes them (from_pretrained keeps "rope" in float32)
    model.rope = WanRotaryPosEmbed(c["attention_head_dim"], (1, 2, 2), 1024).to(device)
    dim = c["num_attention_heads"] * c["attention_head_dim"]
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "scale_shift_table" in n:
                p.normal_(0.0, 1.0 / math.sqrt(dim), generator=g)
            elif "norm" in n and n.endswith("weight"):
                p.normal_(1.0, 0.02, generator=g)
            else:
                p.normal_(0.0, 0.02, generator=g)
            if any(k in n.split(".") for k in KEEP_F32):
                p.data = p.data.float()
    return model.eval().requires_grad_(False)


def latent_size(width, height, frames):
    assert (frames - 1) % 4 == 0 and width % 16 == 0 and height % 16 == 0, "frames 4k+1, sides multiples of 16"
    return 1 + (frames - 1) // 4, height // 8, width // 8


def inputs(name, width, height, frames, txt_len, device, seed=1):
    g = torch.Generator(device="cpu").manual_seed(seed)
    f, h, w = latent_size(width, height, frames)
    latent = torch.randn(1, 16, f, h, w, generator=g).to(device, torch.bfloat16)
    context = torch.randn(1, txt_len, CONFIGS[name]["text_dim"], generator=g).to(device, torch.bfloat16)
    t = torch.tensor([999.0], device=device)
    return dict(hidden_states=latent, timestep=t, encoder_hidden_states=context, return_dict=False)


def flops(name, tokens, txt_len):
    """WanTransformer.flops: 2 per multiply-add of every linear, 4·Lq·Lk·D per attention."""
    c = CONFIGS[name]
    d = c["num_attention_heads"] * c["attention_head_dim"]
    f, l, lc, pin = c["ffn_dim"], tokens, txt_len, 64
    lin = 2 * l * pin * d + 2 * lc * (c["text_dim"] * d + d * d) + 2 * (256 * d + d * d) + 2 * d * 6 * d
    per = 2 * l * 4 * d * d + 2 * l * 2 * d * d + 2 * lc * 2 * d * d + 2 * l * 2 * d * f
    lin += c["num_layers"] * per + 2 * l * d * pin
    att = c["num_layers"] * (4 * l * l * d + 4 * l * lc * d)
    return lin + att


def time_forward(fn, kw, warmup, iters, cuda):
    for _ in range(warmup):
        fn(**kw)
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn(**kw)
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn(**kw)
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times) if times else float("nan")


def rel_l2(a, ref):
    return ((a.double() - ref.double()).norm() / ref.double().norm()).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="wan-1.3b", choices=sorted(CONFIGS))
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--text-tokens", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json", default=None)
    ap.add_argument("--save-dir", default=None, help="write weights (diffusers layout), inputs and outputs here")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cuda = a.device.startswith("cuda")
    dw, dh, df = CONFIGS[a.model]["size"]
    width, height, frames = a.width or dw, a.height or dh, a.frames or df
    f, h, w = latent_size(width, height, frames)
    tokens = f * (h // 2) * (w // 2)
    t0 = time.time()
    model = build(a.model, a.device)
    if cuda:
        torch.cuda.synchronize()
    dev_name = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"{a.model} ready in {time.time() - t0:.1f} s on {dev_name} ({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B "
          f"parameters); video {width}x{height}x{frames} -> {tokens} tokens + {a.text_tokens} text", flush=True)
    results = {"device": dev_name, "torch": torch.__version__, "runs": []}
    with torch.inference_mode():
        kw = inputs(a.model, width, height, frames, a.text_tokens, a.device)
        if a.save_dir:
            from safetensors.torch import save_file
            os.makedirs(a.save_dir, exist_ok=True)
            out = model(**kw)[0]
            t1 = time.time()
            save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                      os.path.join(a.save_dir, "diffusion_pytorch_model.safetensors"))
            with open(os.path.join(a.save_dir, "config.json"), "w") as fh:
                json.dump(dict(model.config) | {"_class_name": "WanTransformer3DModel"}, fh, default=list)
            # the same forward in float32 (weights upcast from the bf16 ones) as the accuracy yardstick for both
            model.float()
            kw32 = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in kw.items()}
            t2 = time.time()
            out32 = model(**kw32)[0]
            if cuda:
                torch.cuda.synchronize()
            print(f"fp32 forward {time.time() - t2:.1f} s", flush=True)
            model = None
            print(f"diffusers bf16 vs diffusers fp32 (same weights): rel-L2 {rel_l2(out, out32):.3e}", flush=True)
            save_file({"hidden_states": kw["hidden_states"].contiguous(), "timestep": kw["timestep"].contiguous(),
                       "encoder_hidden_states": kw["encoder_hidden_states"].contiguous(),
                       "output": out.contiguous(), "output_f32": out32.contiguous()},
                      os.path.join(a.save_dir, "io.safetensors"))
            print(f"saved weights, config and io to {a.save_dir} in {time.time() - t1:.1f} s", flush=True)
        if a.iters > 0 and model is not None:
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            ms = time_forward(model, kw, a.warmup, a.iters, cuda)
            peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan")
            fl = flops(a.model, tokens, a.text_tokens)
            row = {"model": a.model, "size": f"{width}x{height}x{frames}", "mode": "eager", "ms": ms, "iters": a.iters,
                   "tflop": fl / 1e12, "tflops": fl / ms / 1e9, "peak_gb": peak, "video_tokens": tokens,
                   "text_tokens": a.text_tokens}
            results["runs"].append(row)
            print(json.dumps(row), flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
