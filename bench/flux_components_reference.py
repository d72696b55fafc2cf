#!/usr/bin/env python3
"""Reference weights, inputs and outputs for dit4j's Flux component check (org.dit4j.engine.bench.FluxComponentCheck):
transformers' T5EncoderModel (T5-XXL v1.1) and CLIPTextModel (CLIP-L), diffusers' AutoencoderKL (the Flux VAE), each
with seeded random weights, at full size on the GPU (--size full) or at a tiny size on the CPU (--size tiny, to
validate this script and the Java check locally).

Numerics: float32 with TF32 off (cuBLAS and cuDNN), so the "f32" outputs are true fp32 results. Every weight is rounded
to a bfloat16 value before anything runs, so one bf16 file feeds all runs exactly: the fp32 reference computes with the
bf16 values upcast (exact), dit4j's F32 run casts them to F32 (exact), and the bf16 runs (the reference's own, after
model.to(bfloat16), and dit4j's BF16) use them as they are. The reference's bf16 outputs are saved for context: they
show how far a bf16 run of the reference itself lands from its fp32 answer.

Random weights (seeded generator on the run device; all values stated so the activations stay sane in fp32):
  T5    shared (token embedding) N(0, 1); q N(0, 1/(d_model·d_kv)) (T5 does not scale q·k by 1/sqrt(d_kv), so this
        keeps the attention logits O(1) instead of O(sqrt(d_kv))); k, v N(0, 1/d_model); o N(0, 1/(heads·d_kv));
        wi_0, wi_1 N(0, 1/d_model); wo N(0, 1/d_ff); layer norm weights 1 + N(0, 0.1²); relative bias N(0, 1).
        This is the scheme of T5's own initialisation (factor 1) with non-trivial norms. With N(0, 1/d_model) for q as
        well, the logits get std ~8 and the softmax is nearly one-hot (checked by the printed attention statistics).
  CLIP  token and position embeddings N(0, 0.5²); Linear weights N(0, 1/in_features), biases N(0, 0.1²); layer norm
        weights 1 + N(0, 0.1²), biases N(0, 0.1²).
  VAE   conv weights: PyTorch's default (Kaiming-uniform) init from the seeded global generator; conv biases
        N(0, 0.1²); GroupNorm weights 1 + N(0, 0.25²), biases N(0, 0.25²); then the decoder's conv_out is rescaled so
        that the decoded image has std 0.5 (measured on a 32×32 latent; decoded values O(1), so the [−1, 1] image and
        its PSNR mean something rather than being all clamped).
The script prints activation statistics (T5 residual stream RMS before the final norm, mean largest attention
probability, output std, finiteness) and stops with an error if an output is not finite.

Files under --out:
  t5.safetensors            T5EncoderModel state dict, Hugging Face names ("shared.weight", "encoder.block.N...";
                            the tied "encoder.embed_tokens.weight" left out), BF16
  clip.safetensors          CLIPTextModel state dict with the "text_model." prefix of real checkpoints, BF16
  vae/                      AutoencoderKL.save_pretrained: config.json + diffusion_pytorch_model.safetensors, BF16
  io.safetensors            (F32 unless noted)
     t5.ids [1, L] I64      random tokens 2..vocab, then EOS (1), then padding (0), as Flux pads T5 prompts
     t5.hidden, t5.hidden_bf16             last_hidden_state, no attention mask (Flux passes none)
     clip.ids [1, 77] I64   BOS, random tokens, EOS, then EOS as padding (CLIP-L's tokenizer pads with EOS)
     clip.hidden, clip.pooled, clip.hidden_bf16, clip.pooled_bf16    last_hidden_state and pooler_output, no mask
     vae.z [1, 16, h, w]    a random latent in the scaled (transformer) space
     vae.dec, vae.dec_bf16  vae.decode(z / scaling + shift).sample          [1, 3, 8h, 8w]
     vae.x [1, 3, H, W]     2·(p/255) − 1 of random 8-bit pixels (smooth gradients plus noise)
     vae.mean, vae.mean_bf16   vae.encode(x).latent_dist.mean (raw, unscaled)    (no *_bf16 with --vae-skip-bf16)
  reference.json            sizes, seeds, timings, statistics, versions

  python3 bench/flux_components_reference.py --out /tmp/fluxcomp --size full --device cuda
  python3 bench/flux_components_reference.py --out /tmp/fc-tiny --size tiny --device cpu
Needs torch, transformers, safetensors and diffusers (PYTHONPATH to its src/).
"""
import argparse
import json
import math
import os
import sys
import time

import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")

SIZES = {
    "full": dict(
        t5=dict(vocab_size=32128, d_model=4096, d_kv=64, num_heads=64, d_ff=10240, num_layers=24, tokens=512, prompt=300),
        clip=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                  max_position_embeddings=77, prompt=40),
        vae=dict(block_out_channels=(128, 256, 512, 512), latent=128, image=1024),
    ),
    # the tiny CLIP keeps 64-wide heads (dit4j detects CLIP heads as width/64) and a width ≤ 768 (quick_gelu)
    "tiny": dict(
        t5=dict(vocab_size=300, d_model=64, d_kv=16, num_heads=4, d_ff=96, num_layers=2, tokens=64, prompt=40),
        clip=dict(vocab_size=500, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                  max_position_embeddings=77, prompt=20),
        vae=dict(block_out_channels=(32, 32, 64, 64), latent=8, image=64),
    ),
}


def log(*a):
    print(*a, flush=True)


def rel_l2(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def check_finite(name, t):
    if not torch.isfinite(t).all():
        raise SystemExit(f"{name}: the reference output is not finite ({int((~torch.isfinite(t)).sum())} values); "
                         f"the random weights are too large for this size")


def to_bf16_values(model):
    """Rounds every parameter to the nearest bfloat16 value (kept in float32)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())


def save_tensors(path, tensors, metadata):
    from safetensors.torch import save_file
    t0 = time.time()
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, path, metadata=metadata)
    log(f"  wrote {path} ({os.path.getsize(path) / 1e9:.2f} GB, {len(tensors)} tensors) in {time.time() - t0:.1f} s")


# ---------------------------------------------------------------------------------------------------------------- T5

def run_t5(spec, device, seed, io, stats):
    from transformers import T5Config, T5EncoderModel
    s = dict(spec)
    tokens, prompt = s.pop("tokens"), s.pop("prompt")
    cfg = T5Config(**s, relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.0,
                   layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
                   pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    cfg._attn_implementation = "eager"
    t0 = time.time()
    with torch.device(device):
        model = T5EncoderModel(cfg).eval().requires_grad_(False)
    g = torch.Generator(device=device).manual_seed(seed)
    d, dkv, inner, dff = cfg.d_model, cfg.d_kv, cfg.d_kv * cfg.num_heads, cfg.d_ff
    std = {".q.weight": (d * dkv) ** -0.5, ".k.weight": d ** -0.5, ".v.weight": d ** -0.5, ".o.weight": inner ** -0.5,
           ".wi_0.weight": d ** -0.5, ".wi_1.weight": d ** -0.5, ".wo.weight": dff ** -0.5}
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, device=device, dtype=torch.float32)
            if name.endswith("relative_attention_bias.weight"):
                v = r
            elif "layer_norm" in name:
                v = 1 + 0.1 * r
            elif name == "shared.weight" or name.endswith("embed_tokens.weight"):
                v = r
            else:
                k = next((k for k in std if name.endswith(k)), None)
                if k is None:
                    raise SystemExit(f"T5: no init rule for parameter {name} {list(p.shape)}")
                v = r * std[k]
            p.copy_(v)
            del r, v
        emb, shared = model.encoder.embed_tokens.weight, model.shared.weight
        if emb.data_ptr() != shared.data_ptr():
            emb.copy_(shared)
    to_bf16_values(model)
    sync(device)
    log(f"T5 {cfg.num_layers} layers, d_model {d}, {cfg.num_heads}×{dkv} heads, d_ff {dff}, vocab {cfg.vocab_size}: "
        f"{sum(p.numel() for p in model.parameters()) / 1e9:.3f} G parameters, built in {time.time() - t0:.1f} s")

    gi = torch.Generator().manual_seed(seed + 1)
    ids = torch.zeros(1, tokens, dtype=torch.int64)
    ids[0, :prompt] = torch.randint(2, cfg.vocab_size, (prompt,), generator=gi)
    ids[0, prompt] = 1
    io["t5.ids"] = ids

    # residual stream RMS before the final norm, and attention sharpness, from hooks in the fp32 run
    seen = {}
    hooks = [model.encoder.final_layer_norm.register_forward_pre_hook(
        lambda m, a: seen.__setitem__("pre_norm_rms", float(a[0].float().pow(2).mean().sqrt())))]
    with torch.no_grad():
        t0 = time.time()
        out = model(input_ids=ids.to(device), output_attentions=True)
        sync(device)
        t_f32 = time.time() - t0
        hidden = out.last_hidden_state.float()
        att_max = [float(a.float().amax(-1).mean()) for a in out.attentions] if out.attentions else []
        del out
    for h in hooks:
        h.remove()
    check_finite("t5.hidden", hidden)
    io["t5.hidden"] = hidden.cpu()
    model.to(torch.bfloat16)
    with torch.no_grad():
        t0 = time.time()
        hb = model(input_ids=ids.to(device)).last_hidden_state.float()
        sync(device)
        t_bf16 = time.time() - t0
    io["t5.hidden_bf16"] = hb.cpu()
    st = dict(out_std=float(hidden.std()), out_absmax=float(hidden.abs().max()), pre_norm_rms=seen.get("pre_norm_rms"),
              attn_mean_max_prob_first=att_max[0] if att_max else None,
              attn_mean_max_prob_last=att_max[-1] if att_max else None,
              attn_mean_max_prob_max=max(att_max) if att_max else None,
              ref_bf16_vs_f32=rel_l2(hb, hidden), forward_f32_s=t_f32, forward_bf16_s=t_bf16)
    log(f"  T5 fp32: out std {st['out_std']:.4f}, |out| max {st['out_absmax']:.3f}, residual RMS before the final norm "
        f"{st['pre_norm_rms']:.3f}; mean largest attention probability per row: layer 0 "
        f"{st['attn_mean_max_prob_first']:.3f}, last layer {st['attn_mean_max_prob_last']:.3f}, max over layers "
        f"{st['attn_mean_max_prob_max']:.3f} (1.0 would be one-hot); reference bf16 vs fp32 rel-L2 {st['ref_bf16_vs_f32']:.3e}")
    stats["t5"] = st
    sd = {k: v for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}
    return sd, dict(model="T5EncoderModel (T5 v1.1)", config=cfg.to_json_string(use_diff=False)), model


# -------------------------------------------------------------------------------------------------------------- CLIP

def run_clip(spec, device, seed, io, stats):
    from transformers import CLIPTextConfig, CLIPTextModel
    s = dict(spec)
    prompt = s.pop("prompt")
    vocab = s["vocab_size"]
    bos, eos = vocab - 2, vocab - 1   # 49406, 49407 for CLIP-L
    cfg = CLIPTextConfig(**s, hidden_act="quick_gelu", layer_norm_eps=1e-5, attention_dropout=0.0, bos_token_id=bos,
                         eos_token_id=eos, pad_token_id=eos, projection_dim=s["hidden_size"])
    cfg._attn_implementation = "eager"
    with torch.device(device):
        model = CLIPTextModel(cfg).eval().requires_grad_(False)
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, device=device, dtype=torch.float32)
            if "layer_norm" in name:
                v = 1 + 0.1 * r if name.endswith("weight") else 0.1 * r
            elif "embedding" in name:
                v = 0.5 * r
            elif p.dim() == 2:
                v = r / math.sqrt(p.shape[1])
            else:
                v = 0.1 * r
            p.copy_(v)
    to_bf16_values(model)
    log(f"CLIP {cfg.num_hidden_layers} layers, width {cfg.hidden_size}, {cfg.num_attention_heads} heads, vocab {vocab}: "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")
    n = cfg.max_position_embeddings
    gi = torch.Generator().manual_seed(seed + 1)
    ids = torch.full((1, n), eos, dtype=torch.int64)
    ids[0, 0] = bos
    ids[0, 1:1 + prompt] = torch.randint(0, bos, (prompt,), generator=gi)
    io["clip.ids"] = ids
    with torch.no_grad():
        o = model(input_ids=ids.to(device), output_attentions=True)
        hidden, pooled = o.last_hidden_state.float(), o.pooler_output.float()
        att_max = [float(a.float().amax(-1).mean()) for a in o.attentions] if o.attentions else []
        check_finite("clip.hidden", hidden)
        model.to(torch.bfloat16)
        ob = model(input_ids=ids.to(device))
        hb, pb = ob.last_hidden_state.float(), ob.pooler_output.float()
    io["clip.hidden"], io["clip.pooled"] = hidden.cpu(), pooled.cpu()
    io["clip.hidden_bf16"], io["clip.pooled_bf16"] = hb.cpu(), pb.cpu()
    st = dict(out_std=float(hidden.std()), pooled_std=float(pooled.std()),
              attn_mean_max_prob_max=max(att_max) if att_max else None,
              ref_bf16_vs_f32=rel_l2(hb, hidden), ref_bf16_vs_f32_pooled=rel_l2(pb, pooled))
    log(f"  CLIP fp32: out std {st['out_std']:.4f}, pooled std {st['pooled_std']:.4f}, mean largest attention probability "
        f"(max over layers) {st['attn_mean_max_prob_max']:.3f}; reference bf16 vs fp32 rel-L2 {st['ref_bf16_vs_f32']:.3e} "
        f"(pooled {st['ref_bf16_vs_f32_pooled']:.3e})")
    stats["clip"] = st
    # transformers 5 names the tensors without the "text_model." prefix that real checkpoints carry
    sd = {(k if k.startswith("text_model.") else "text_model." + k): v for k, v in model.state_dict().items()
          if not k.endswith("position_ids")}
    return sd, dict(model="CLIPTextModel (CLIP-L)", config=cfg.to_json_string(use_diff=False))


# --------------------------------------------------------------------------------------------------------------- VAE

def run_vae(spec, device, seed, io, stats, out_dir, skip_bf16=False):
    from diffusers import AutoencoderKL
    ch = tuple(spec["block_out_channels"])
    cfg = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(ch),
               up_block_types=("UpDecoderBlock2D",) * len(ch), block_out_channels=ch, layers_per_block=2,
               latent_channels=16, norm_num_groups=32, sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159,
               use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=True, force_upcast=True)
    torch.manual_seed(seed)
    with torch.device(device):
        vae = AutoencoderKL(**cfg).eval().requires_grad_(False)
    g = torch.Generator(device=device).manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if "norm" in name:
                r = torch.randn(p.shape, generator=g, device=device)
                p.copy_(1 + 0.25 * r if name.endswith("weight") else 0.25 * r)
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g, device=device))
    to_bf16_values(vae)
    scaling, shift = cfg["scaling_factor"], cfg["shift_factor"]
    f = 2 ** (len(ch) - 1)
    lat, img = spec["latent"], spec["image"]
    gi = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        probe = torch.randn(1, 16, min(32, lat), min(32, lat), generator=gi).to(device)
        s0 = float(vae.decode(probe / scaling + shift).sample.std())
        vae.decoder.conv_out.weight.mul_(0.5 / s0)
        vae.decoder.conv_out.bias.mul_(0.5 / s0)
        to_bf16_values(vae)
    log(f"VAE {list(ch)}, 16 latent channels, factor {f}: {sum(p.numel() for p in vae.parameters()) / 1e6:.1f} M parameters; "
        f"decoder conv_out scaled by {0.5 / s0:.4g}")
    z = torch.randn(1, 16, lat, lat, generator=gi)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, img), torch.linspace(0, 1, img), indexing="ij")
    base = torch.stack([yy, xx, 0.5 * (yy + xx)]) * 200 + 20
    pixels = (base + 35 * torch.randn(3, img, img, generator=gi)).round().clamp(0, 255)
    x = (2.0 * (pixels / 255.0) - 1.0)[None]
    io["vae.z"], io["vae.x"] = z, x
    with torch.no_grad():
        t0 = time.time()
        dec = vae.decode(z.to(device) / scaling + shift).sample.float()
        sync(device)
        t_dec = time.time() - t0
        check_finite("vae.dec", dec)
        t0 = time.time()
        mean = vae.encode(x.to(device)).latent_dist.mean.float()
        sync(device)
        t_enc = time.time() - t0
        check_finite("vae.mean", mean)
        io["vae.dec"], io["vae.mean"] = dec.cpu(), mean.cpu()
        if skip_bf16:   # PyTorch's bf16 convolutions on the CPU are very slow; local runs may leave them out
            db, mb = dec, mean
        else:
            vae.to(torch.bfloat16)
            db = vae.decode((z.to(device) / scaling + shift).to(torch.bfloat16)).sample.float()
            mb = vae.encode(x.to(device, torch.bfloat16)).latent_dist.mean.float()
            io["vae.dec_bf16"], io["vae.mean_bf16"] = db.cpu(), mb.cpu()
    mse = float(((db * 0.5 + 0.5).clamp(0, 1) - (dec * 0.5 + 0.5).clamp(0, 1)).double().pow(2).mean())
    st = dict(dec_std=float(dec.std()), dec_clamped_fraction=float(((dec < -1) | (dec > 1)).float().mean()),
              mean_std=float(mean.std()), ref_bf16_vs_f32_dec=rel_l2(db, dec), ref_bf16_vs_f32_mean=rel_l2(mb, mean),
              ref_bf16_psnr_db=10 * math.log10(1 / mse) if mse > 0 else float("inf"), decode_f32_s=t_dec, encode_f32_s=t_enc)
    if skip_bf16:
        st.update(ref_bf16_vs_f32_dec=None, ref_bf16_vs_f32_mean=None, ref_bf16_psnr_db=None)
    log(f"  VAE fp32: decoded std {st['dec_std']:.3f} ({100 * st['dec_clamped_fraction']:.1f}% outside [−1, 1]), "
        f"encoder mean std {st['mean_std']:.3f}; " + ("no bf16 reference run (--vae-skip-bf16)" if skip_bf16 else
        f"reference bf16 vs fp32: decode rel-L2 {st['ref_bf16_vs_f32_dec']:.3e} PSNR {st['ref_bf16_psnr_db']:.1f} dB, "
        f"encode rel-L2 {st['ref_bf16_vs_f32_mean']:.3e}"))
    stats["vae"] = st
    t0 = time.time()
    vae.save_pretrained(os.path.join(out_dir, "vae"), safe_serialization=True)
    log(f"  wrote {out_dir}/vae in {time.time() - t0:.1f} s")
    del vae


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--parts", default="t5,clip,vae", help="comma-separated subset of t5,clip,vae")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--vae-skip-bf16", action="store_true",
                    help="no bf16 run of the VAE reference (CPU validation of the full-width VAE; slow bf16 convolutions)")
    a = ap.parse_args()
    import transformers
    import diffusers
    device = torch.device(a.device)
    os.makedirs(a.out, exist_ok=True)
    parts = [p.strip() for p in a.parts.split(",") if p.strip()]
    meta = dict(torch=torch.__version__, transformers=transformers.__version__, diffusers=diffusers.__version__,
                size=a.size, device=str(device), seed=str(a.seed), script="bench/flux_components_reference.py")
    log(" ".join(f"{k} {v}" for k, v in meta.items()))
    if device.type == "cuda":
        log("GPU", torch.cuda.get_device_name(), "TF32 matmul", torch.backends.cuda.matmul.allow_tf32,
            "TF32 cudnn", torch.backends.cudnn.allow_tf32)
    spec, io, stats, times = SIZES[a.size], {}, {}, {}
    for part in parts:
        t0 = time.time()
        if part == "t5":
            sd, m, model = run_t5(spec["t5"], device, a.seed, io, stats)
            save_tensors(os.path.join(a.out, "t5.safetensors"), sd, dict(meta, **m))
            del sd, model
        elif part == "clip":
            sd, m = run_clip(spec["clip"], device, a.seed + 10, io, stats)
            save_tensors(os.path.join(a.out, "clip.safetensors"), sd, dict(meta, **m))
        elif part == "vae":
            run_vae(spec["vae"], device, a.seed + 20, io, stats, a.out, a.vae_skip_bf16)
        else:
            raise SystemExit(f"unknown part '{part}': expected t5, clip or vae")
        if device.type == "cuda":
            torch.cuda.empty_cache()
            log(f"  peak GPU memory so far {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
        times[part] = time.time() - t0
        log(f"{part} done in {times[part]:.1f} s")
    save_tensors(os.path.join(a.out, "io.safetensors"), io, meta)
    with open(os.path.join(a.out, "reference.json"), "w") as fh:
        json.dump(dict(meta=meta, sizes={p: spec[p] for p in parts}, stats=stats, seconds=times), fh, indent=1)
    for k in sorted(io):
        v = io[k]
        log(f"io {k} {list(v.shape)} {str(v.dtype).replace('torch.', '')}"
            + (f" |x|max {v.abs().max().item():.4g}" if v.is_floating_point() else ""))
    log("done")


if __name__ == "__main__":
    sys.exit(main())
