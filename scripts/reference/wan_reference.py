#!/usr/bin/env python3
"""Reference outputs of diffusers' WanTransformer3DModel for dit4j's Wan tests.

Builds two tiny Wan2.1 transformers with fixed seeds, runs them in float32 on the CPU (deterministic) and writes,
under --out (default: models/src/test/resources/wan):

  wan_a_diffusers/config.json + diffusion_pytorch_model.safetensors   diffusers names                  (F32)
  wan_a_original.safetensors              original/ComfyUI names, no prefix                              (BF16)
  wan_a_io.safetensors                    inputs and outputs of config a                                 (F32)
  wan_b_diffusers.safetensors             diffusers names, single file                                   (BF16)
  wan_b_comfy_prefixed.safetensors        original names under "model.diffusion_model."                  (F32)
  wan_b_io.safetensors                    inputs and outputs of config b                                 (F32)
  reference_log.txt                       versions, source digest, errors of the reference's own runs

Config a: 2 layers, 2 heads x 16 (dim 32, RoPE split t/h/w = 8/4/4), ffn 64, text dim 32, 16 channels in and out,
latent [2, 16, 3, 8, 8] (grid 3x4x4 = 48 tokens), 12 context rows, timesteps [999, 437].
Config b: 2 layers, 2 heads x 32 (dim 64, RoPE split 12/10/10), ffn 96, text dim 24, 4 channels in and out,
latent [1, 4, 2, 6, 10] (grid 2x3x5 = 30 tokens), 7 context rows, timestep [250].

The io files hold "latent" [B, C, F, H, W], "timesteps" [B] (integer values as floats, what WanPipeline passes),
"context" [B, N, text_dim], the float32 output "out", the float64 run "out_f64" and a bfloat16 run "out_bf16"
(weights and activations bf16 except the modules diffusers keeps in float32 when loading with torch_dtype=bfloat16:
time_embedder, scale_shift_table, norm1/2/3). All parameters are rounded to the bfloat16 grid first, so BF16 files
hold exactly the weights the reference ran with. The original-layout files come from this script's own
diffusers->original mapping (models.md §2.6); the script checks that mapping by converting back with diffusers'
convert_wan_transformer_to_diffusers and comparing bit for bit.

Run: PYTHONPATH=<diffusers>/src python3 wan_reference.py [--out DIR]
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys

import torch

torch.use_deterministic_algorithms(True)

import diffusers  # noqa: E402
from diffusers import WanTransformer3DModel  # noqa: E402
from diffusers.loaders import single_file_utils  # noqa: E402
from diffusers.utils import logging as diffusers_logging  # noqa: E402

diffusers_logging.set_verbosity_error()   # the .to(dtype) warning about _keep_in_fp32_modules is handled below
LOG = []


def log(line):
    print(line)
    LOG.append(line)

COMFY_PREFIX = "model.diffusion_model."
KEEP_F32 = ("rope", "time_embedder", "scale_shift_table", "norm1", "norm2", "norm3")   # WanTransformer3DModel._keep_in_fp32_modules

_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


def safetensors_bytes(tensors, metadata):
    """Serialise {name: tensor} (sorted by name) in the safetensors format."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


# ----------------------------------------------------------------------------------------------- diffusers -> original

def diffusers_to_original(sd):
    """Our own mapping (models.md §2.6): renames only; the cross-attention LayerNorm is norm2 in diffusers, norm3 in
    the original (whose norm2 is the FFN's parameter-free LayerNorm)."""
    out = {}
    n_layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))

    def mv(dst, src, params=("weight", "bias")):
        for p in params:
            out[f"{dst}.{p}"] = sd[f"{src}.{p}"]

    mv("patch_embedding", "patch_embedding")
    mv("text_embedding.0", "condition_embedder.text_embedder.linear_1")
    mv("text_embedding.2", "condition_embedder.text_embedder.linear_2")
    mv("time_embedding.0", "condition_embedder.time_embedder.linear_1")
    mv("time_embedding.2", "condition_embedder.time_embedder.linear_2")
    mv("time_projection.1", "condition_embedder.time_proj")
    for i in range(n_layers):
        b = f"blocks.{i}."
        out[b + "modulation"] = sd[b + "scale_shift_table"]
        for ours, theirs in (("self_attn", "attn1"), ("cross_attn", "attn2")):
            for o, t in (("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("o", "to_out.0")):
                mv(f"{b}{ours}.{o}", f"{b}{theirs}.{t}")
            mv(f"{b}{ours}.norm_q", f"{b}{theirs}.norm_q", ("weight",))
            mv(f"{b}{ours}.norm_k", f"{b}{theirs}.norm_k", ("weight",))
        mv(b + "norm3", b + "norm2")
        mv(b + "ffn.0", b + "ffn.net.0.proj")
        mv(b + "ffn.2", b + "ffn.net.2")
    out["head.modulation"] = sd["scale_shift_table"]
    mv("head.head", "proj_out")
    assert len(out) == len(sd), (len(out), len(sd))
    return out


def check_roundtrip(original, sd, prefixed):
    """Convert our original-layout dict back with diffusers' own converter; require bit equality."""
    ckpt = {(COMFY_PREFIX + k if prefixed else k): v.clone() for k, v in original.items()}
    back = single_file_utils.convert_wan_transformer_to_diffusers(ckpt)
    assert back.keys() == sd.keys(), sorted(set(back) ^ set(sd))[:10]
    for k in sd:
        assert back[k].shape == sd[k].shape and torch.equal(back[k], sd[k]), f"round trip differs at {k}"
    return len(back)


# ----------------------------------------------------------------------------------------------- models

def randomize(model, gen):
    """Random weights on the bf16 grid: weights N(0, 1/fan_in), biases N(0, 0.1^2), norm scales 1 + N(0, 0.2^2),
    modulation tables N(0, 0.5^2)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("scale_shift_table"):
                v = 0.5 * torch.randn(p.shape, generator=gen)
            elif name.endswith(".weight") and p.ndim >= 2:
                v = torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel())
            elif name.endswith(".bias"):
                v = 0.1 * torch.randn(p.shape, generator=gen)
            else:
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
            p.copy_(v.to(torch.bfloat16).to(torch.float32))


def bf16_like_from_pretrained(cfg, sd):
    """The model as from_pretrained(torch_dtype=bfloat16) holds it: bf16 except _keep_in_fp32_modules."""
    m = WanTransformer3DModel(**cfg).eval()
    m.load_state_dict(sd)
    for name, p in m.named_parameters():
        if not any(k in name.split(".") for k in KEEP_F32):
            p.data = p.data.bfloat16()
    return m


def build(name, seed, cfg, latent_shape, n_ctx, timesteps):
    gen = torch.Generator().manual_seed(seed)
    model = WanTransformer3DModel(**cfg).to(torch.float32).eval()
    randomize(model, gen)
    latent = torch.randn(latent_shape, generator=gen)
    context = torch.randn((latent_shape[0], n_ctx, cfg["text_dim"]), generator=gen)
    t = torch.tensor(timesteps, dtype=torch.int64)
    sd = dict(model.state_dict())
    with torch.no_grad():
        out = model(hidden_states=latent, timestep=t, encoder_hidden_states=context, return_dict=False)[0]
        m64 = WanTransformer3DModel(**cfg).to(torch.float64).eval()
        m64.load_state_dict({k: v.double() for k, v in sd.items()})
        out64 = m64(hidden_states=latent.double(), timestep=t, encoder_hidden_states=context.double(),
                    return_dict=False)[0]
        mbf = bf16_like_from_pretrained(cfg, sd)
        outbf = mbf(hidden_states=latent.bfloat16(), timestep=t, encoder_hidden_states=context.bfloat16(),
                    return_dict=False)[0].float()
    io_t = dict(latent=latent, context=context, timesteps=t.float(), out=out, out_f64=out64.float(), out_bf16=outbf)
    rel = (out.double() - out64).norm() / out64.norm()
    relbf = (outbf - out).norm() / out.norm()
    log(f"{name}: out {tuple(out.shape)} |out|={out.norm():.4f} max|out|={out.abs().max():.3f} "
          f"rel-L2(f32 vs f64)={rel:.3e} rel-L2(bf16 vs f32)={relbf:.3e}")
    return sd, io_t


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "models", "src", "test", "resources", "wan"))
    args = ap.parse_args()
    out_dir = os.path.normpath(args.out)
    src = os.path.dirname(diffusers.__file__)
    digest = hashlib.sha256()
    for f in ("models/transformers/transformer_wan.py", "loaders/single_file_utils.py", "models/embeddings.py"):
        digest.update(open(os.path.join(src, f), "rb").read())
    meta = {"generator": "scripts/reference/wan_reference.py", "torch": torch.__version__,
            "diffusers": diffusers.__version__, "diffusers_wan_sources_sha256": digest.hexdigest(),
            "device": "cpu float32, deterministic algorithms"}
    log(json.dumps(meta))
    files = {}

    cfg_a = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=16, out_channels=16,
                 text_dim=32, freq_dim=256, ffn_dim=64, num_layers=2, cross_attn_norm=True,
                 qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
    sd, io_t = build("a", 2025, cfg_a, (2, 16, 3, 8, 8), 12, [999, 437])
    orig = diffusers_to_original(sd)
    n = check_roundtrip(orig, sd, prefixed=False)
    log(f"a: diffusers->original->diffusers round trip through diffusers' converter: {n} tensors bit-equal")
    m = dict(meta, config=json.dumps(cfg_a))
    files["wan_a_diffusers/diffusion_pytorch_model.safetensors"] = safetensors_bytes(sd, m)
    files["wan_a_diffusers/config.json"] = json.dumps(
        dict(cfg_a, _class_name="WanTransformer3DModel", patch_size=list(cfg_a["patch_size"])), indent=1).encode()
    files["wan_a_original.safetensors"] = safetensors_bytes({k: v.bfloat16() for k, v in orig.items()}, m)
    files["wan_a_io.safetensors"] = safetensors_bytes(io_t, m)

    cfg_b = dict(cfg_a, attention_head_dim=32, in_channels=4, out_channels=4, text_dim=24, ffn_dim=96)
    sd, io_t = build("b", 7, cfg_b, (1, 4, 2, 6, 10), 7, [250])
    orig = diffusers_to_original(sd)
    n = check_roundtrip(orig, sd, prefixed=True)
    log(f"b: round trip (prefixed original) through diffusers' converter: {n} tensors bit-equal")
    m = dict(meta, config=json.dumps(cfg_b))
    files["wan_b_diffusers.safetensors"] = safetensors_bytes({k: v.bfloat16() for k, v in sd.items()}, m)
    files["wan_b_comfy_prefixed.safetensors"] = safetensors_bytes({COMFY_PREFIX + k: v for k, v in orig.items()}, m)
    files["wan_b_io.safetensors"] = safetensors_bytes(io_t, m)

    for name, data in sorted(files.items()):
        path = os.path.join(out_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        log(f"  {name}: {len(data)} bytes")
    with open(os.path.join(out_dir, "reference_log.txt"), "w") as f:
        f.write("\n".join(LOG) + "\n")
    print("done")


if __name__ == "__main__":
    sys.exit(main())
