#!/usr/bin/env python3
"""Reference outputs of diffusers' FluxTransformer2DModel for dit4j's Flux tests.

Builds two tiny Flux transformers with fixed seeds (dev-like with guidance embedding, schnell-like without), runs them
in float32 on the CPU (deterministic, no TF32 anywhere) and writes, under --out:

  flux_dev_diffusers/diffusion_pytorch_model-0000{1,2}-of-00002.safetensors + .safetensors.index.json   (F32)
  flux_dev_bfl.safetensors                       BFL/ComfyUI names, no prefix                         (BF16)
  flux_dev_io.safetensors                        inputs and outputs of the dev config                 (F32)
  flux_schnell_diffusers.safetensors             diffusers names, single file                         (BF16)
  flux_schnell_bfl_prefixed.safetensors          BFL names with the "model.diffusion_model." prefix   (F32)
  flux_schnell_io.safetensors                    inputs and output of the schnell config              (F32)

The io files hold the float32 output "out", the float64 run "out_f64" and a bfloat16 run "out_bf16" (GPU when
available) that sizes the tolerance of bf16 tests. All parameters are rounded to the bfloat16 grid before the forward, so BF16 files hold exactly the weights the
reference ran with. The BFL files come from this script's own diffusers->BFL mapping; the script checks that mapping
by converting back with diffusers' convert_flux_transformer_checkpoint_to_diffusers and comparing bit for bit.
Everything is packed into flux_ref.tar.gz (the device run returns few files).

Run: PYTHONPATH=<diffusers>/src python3 flux_reference.py --out DIR
"""
import argparse
import hashlib
import io
import json
import math
import os
import struct
import sys
import tarfile

import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.use_deterministic_algorithms(True)

import diffusers  # noqa: E402
from diffusers import FluxTransformer2DModel  # noqa: E402
from diffusers.loaders import single_file_utils  # noqa: E402

BFL_PREFIX = "model.diffusion_model."

# ----------------------------------------------------------------------------------------------- safetensors writer

_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


def safetensors_bytes(tensors, metadata):
    """Serialise {name: tensor} (sorted by name) in the safetensors format; no dependency on the safetensors package."""
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


# ----------------------------------------------------------------------------------------------- diffusers -> BFL

def diffusers_to_bfl(sd):
    """Our own mapping (models.md §1.9): rename, fuse q/k/v (+ proj_mlp) rows, swap the final (scale, shift) halves."""
    out = {}
    n_double = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("transformer_blocks."))
    n_single = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("single_transformer_blocks."))

    def lin(dst, src):
        for p in ("weight", "bias"):
            out[f"{dst}.{p}"] = sd[f"{src}.{p}"]

    lin("img_in", "x_embedder")
    lin("txt_in", "context_embedder")
    lin("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1")
    lin("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2")
    lin("vector_in.in_layer", "time_text_embed.text_embedder.linear_1")
    lin("vector_in.out_layer", "time_text_embed.text_embedder.linear_2")
    if "time_text_embed.guidance_embedder.linear_1.weight" in sd:
        lin("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1")
        lin("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2")
    for i in range(n_double):
        d, b = f"double_blocks.{i}", f"transformer_blocks.{i}"
        lin(f"{d}.img_mod.lin", f"{b}.norm1.linear")
        lin(f"{d}.txt_mod.lin", f"{b}.norm1_context.linear")
        for p in ("weight", "bias"):
            out[f"{d}.img_attn.qkv.{p}"] = torch.cat([sd[f"{b}.attn.to_{x}.{p}"] for x in "qkv"], 0)
            out[f"{d}.txt_attn.qkv.{p}"] = torch.cat([sd[f"{b}.attn.add_{x}_proj.{p}"] for x in "qkv"], 0)
        out[f"{d}.img_attn.norm.query_norm.scale"] = sd[f"{b}.attn.norm_q.weight"]
        out[f"{d}.img_attn.norm.key_norm.scale"] = sd[f"{b}.attn.norm_k.weight"]
        out[f"{d}.txt_attn.norm.query_norm.scale"] = sd[f"{b}.attn.norm_added_q.weight"]
        out[f"{d}.txt_attn.norm.key_norm.scale"] = sd[f"{b}.attn.norm_added_k.weight"]
        lin(f"{d}.img_attn.proj", f"{b}.attn.to_out.0")
        lin(f"{d}.txt_attn.proj", f"{b}.attn.to_add_out")
        lin(f"{d}.img_mlp.0", f"{b}.ff.net.0.proj")
        lin(f"{d}.img_mlp.2", f"{b}.ff.net.2")
        lin(f"{d}.txt_mlp.0", f"{b}.ff_context.net.0.proj")
        lin(f"{d}.txt_mlp.2", f"{b}.ff_context.net.2")
    for i in range(n_single):
        s, b = f"single_blocks.{i}", f"single_transformer_blocks.{i}"
        lin(f"{s}.modulation.lin", f"{b}.norm.linear")
        for p in ("weight", "bias"):
            out[f"{s}.linear1.{p}"] = torch.cat([sd[f"{b}.attn.to_{x}.{p}"] for x in "qkv"] + [sd[f"{b}.proj_mlp.{p}"]], 0)
        out[f"{s}.norm.query_norm.scale"] = sd[f"{b}.attn.norm_q.weight"]
        out[f"{s}.norm.key_norm.scale"] = sd[f"{b}.attn.norm_k.weight"]
        lin(f"{s}.linear2", f"{b}.proj_out")
    for p in ("weight", "bias"):
        scale, shift = sd[f"norm_out.linear.{p}"].chunk(2, 0)
        out[f"final_layer.adaLN_modulation.1.{p}"] = torch.cat([shift, scale], 0)
    lin("final_layer.linear", "proj_out")
    return out


def check_roundtrip(bfl, original, inner_dim, prefixed):
    """Convert our BFL dict back with diffusers' own converter and require bit equality with the original state dict.

    diffusers' converter hard-codes inner_dim = 3072 (mlp 12288) when it splits single_blocks.i.linear1; for the tiny
    configs we substitute, in that module only, a torch.split that maps those sizes to (D, D, D, 4D). Everything else
    runs unchanged."""
    ckpt = {(BFL_PREFIX + k if prefixed else k): v.clone() for k, v in bfl.items()}
    real_split = torch.split

    def split(t, sizes, dim=0):
        if isinstance(sizes, (tuple, list)) and tuple(sizes) == (3072, 3072, 3072, 12288):
            sizes = (inner_dim, inner_dim, inner_dim, 4 * inner_dim)
        return real_split(t, sizes, dim)

    class TorchProxy:
        def __getattr__(self, name):
            return split if name == "split" else getattr(torch, name)

    saved = single_file_utils.torch
    single_file_utils.torch = TorchProxy()
    try:
        back = single_file_utils.convert_flux_transformer_checkpoint_to_diffusers(ckpt)
    finally:
        single_file_utils.torch = saved
    assert not ckpt, f"diffusers' converter left keys unconverted: {sorted(ckpt)[:5]}"
    assert back.keys() == original.keys(), (sorted(set(back) ^ set(original)))[:10]
    for k in original:
        assert back[k].shape == original[k].shape and torch.equal(back[k], original[k]), f"round trip differs at {k}"
    return len(back)


# ----------------------------------------------------------------------------------------------- inputs

try:  # the pipeline's own packing and ids (needs transformers); else the same formulas written out here
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
    PACKING_SOURCE = "diffusers FluxPipeline._pack_latents/_prepare_latent_image_ids"
except Exception as e:  # noqa: BLE001
    FluxPipeline = None
    PACKING_SOURCE = f"script (FluxPipeline not importable: {type(e).__name__})"


def pack(latents):
    """[B,C,H,W] -> [B,(H/2)(W/2),4C], "b c (h ph) (w pw) -> b (h w) (c ph pw)"."""
    b, c, h, w = latents.shape
    if FluxPipeline is not None:
        return FluxPipeline._pack_latents(latents, b, c, h, w)
    return latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def image_ids(h2, w2, axis0):
    """[h2*w2, 3] ids (axis0, row, col), row-major; Kontext reference images use axis0 = 1."""
    if FluxPipeline is not None:
        ids = FluxPipeline._prepare_latent_image_ids(1, h2, w2, torch.device("cpu"), torch.float32)
    else:
        ids = torch.zeros(h2, w2, 3)
        ids[..., 1] += torch.arange(h2)[:, None]
        ids[..., 2] += torch.arange(w2)[None, :]
        ids = ids.reshape(h2 * w2, 3)
    ids[..., 0] = axis0
    return ids


def randomize(model, gen):
    """Random weights on the bf16 grid: linears N(0, 1/in), biases N(0, 0.1^2), norm scales 1 + N(0, 0.2^2)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".weight") and p.ndim == 2:
                v = torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1])
            elif name.endswith(".bias"):
                v = 0.1 * torch.randn(p.shape, generator=gen)
            else:
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
            p.copy_(v.to(torch.bfloat16).to(torch.float32))


def build(name, seed, guidance, num_layers, num_single_layers, in_channels, lat_hw, ref_hw, n_txt):
    gen = torch.Generator().manual_seed(seed)
    cfg = dict(patch_size=1, in_channels=in_channels, num_layers=num_layers, num_single_layers=num_single_layers,
               attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=24,
               guidance_embeds=guidance, axes_dims_rope=(4, 6, 6))
    model = FluxTransformer2DModel(**cfg).to(torch.float32).eval()
    randomize(model, gen)
    B = 2
    io_t = {}
    if in_channels == 64:
        lat = torch.randn((B, 16) + lat_hw, generator=gen)
        ref = torch.randn((B, 16) + ref_hw, generator=gen)
        img = torch.cat([pack(lat), pack(ref)], 1)
        ids = torch.cat([image_ids(lat_hw[0] // 2, lat_hw[1] // 2, 0), image_ids(ref_hw[0] // 2, ref_hw[1] // 2, 1)], 0)
        io_t["latent"], io_t["ref_latent"] = lat, ref
    else:
        img = torch.randn((B, (lat_hw[0] // 2) * (lat_hw[1] // 2), in_channels), generator=gen)
        ids = image_ids(lat_hw[0] // 2, lat_hw[1] // 2, 0)
        ids[:, 1] += 3          # an offset grid: non-trivial rows
    txt = torch.randn((B, n_txt, 32), generator=gen)
    y = torch.randn((B, 24), generator=gen)
    # t, g and 1000·t, 1000·g are exact in bfloat16: diffusers rounds timestep/guidance to the activation dtype before
    # the ×1000, which would otherwise dominate the bf16 run's error
    t = torch.tensor([0.5, 0.25])
    g = torch.tensor([4.0, 1.0]) if guidance else None
    txt_ids = torch.zeros((n_txt, 3))
    with torch.no_grad():
        out = model(hidden_states=img, encoder_hidden_states=txt, pooled_projections=y, timestep=t, img_ids=ids,
                    txt_ids=txt_ids, guidance=g, return_dict=False)[0]
        m64 = FluxTransformer2DModel(**cfg).to(torch.float64).eval()
        m64.load_state_dict({k: v.to(torch.float64) for k, v in model.state_dict().items()})
        out64 = m64(hidden_states=img.double(), encoder_hidden_states=txt.double(), pooled_projections=y.double(),
                    timestep=t.double(), img_ids=ids.double(), txt_ids=txt_ids.double(),
                    guidance=None if g is None else g.double(), return_dict=False)[0]
        # the same model in bfloat16 (weights and activations), on the GPU when there is one: what a bf16 run of the
        # reference gets, to scale the tolerance of dit4j's bf16 test
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        mbf = FluxTransformer2DModel(**cfg).to(torch.bfloat16).to(dev).eval()
        mbf.load_state_dict({k: v.to(torch.bfloat16) for k, v in model.state_dict().items()})
        outbf = mbf(hidden_states=img.to(dev, torch.bfloat16), encoder_hidden_states=txt.to(dev, torch.bfloat16),
                    pooled_projections=y.to(dev, torch.bfloat16), timestep=t.to(dev), img_ids=ids.to(dev),
                    txt_ids=txt_ids.to(dev), guidance=None if g is None else g.to(dev), return_dict=False)[0]
        outbf = outbf.float().cpu()
    io_t.update(img=img, txt=txt, y=y, timesteps=t, img_ids=ids, txt_ids=txt_ids, out=out, out_f64=out64.float(),
                out_bf16=outbf)
    if g is not None:
        io_t["guidance"] = g
    rel = (out.double() - out64).norm() / out64.norm()
    print(f"{name}: out {tuple(out.shape)} |out|={out.norm():.4f} rel-L2(f32 vs f64)={rel:.3e} "
          f"max|out|={out.abs().max():.3f} rel-L2(bf16 on {dev} vs f32)={(outbf - out).norm() / out.norm():.3e}")
    return model, cfg, io_t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    src = os.path.dirname(diffusers.__file__)
    digest = hashlib.sha256()
    for f in ("models/transformers/transformer_flux.py", "loaders/single_file_utils.py", "models/embeddings.py"):
        digest.update(open(os.path.join(src, f), "rb").read())
    meta = {"generator": "scripts/reference/flux_reference.py", "torch": torch.__version__,
            "diffusers": diffusers.__version__, "diffusers_flux_sources_sha256": digest.hexdigest(),
            "device": "cpu float32, deterministic algorithms, no TF32", "packing": PACKING_SOURCE}
    print(json.dumps(meta))
    files = {}

    model, cfg, io_t = build("dev", 1234, True, 2, 2, 64, (4, 6), (4, 4), 5)
    sd = dict(model.state_dict())
    bfl = diffusers_to_bfl(sd)
    n = check_roundtrip(bfl, sd, 32, prefixed=False)
    print(f"dev: diffusers->BFL->diffusers round trip through diffusers' converter: {n} tensors bit-equal")
    m = dict(meta, config=json.dumps(cfg))
    names = sorted(sd)
    shards = [names[: len(names) // 2], names[len(names) // 2:]]
    weight_map = {}
    for i, part in enumerate(shards):
        fn = f"diffusion_pytorch_model-{i + 1:05d}-of-00002.safetensors"
        files[f"flux_dev_diffusers/{fn}"] = safetensors_bytes({k: sd[k] for k in part}, m)
        weight_map.update({k: fn for k in part})
    total = sum(sd[k].numel() * 4 for k in names)
    files["flux_dev_diffusers/diffusion_pytorch_model.safetensors.index.json"] = json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1).encode()
    files["flux_dev_diffusers/config.json"] = json.dumps(dict(cfg, _class_name="FluxTransformer2DModel"), indent=1).encode()
    files["flux_dev_bfl.safetensors"] = safetensors_bytes({k: v.to(torch.bfloat16) for k, v in bfl.items()}, m)
    files["flux_dev_io.safetensors"] = safetensors_bytes(io_t, m)

    model, cfg, io_t = build("schnell", 4321, False, 1, 2, 16, (4, 6), None, 3)
    sd = dict(model.state_dict())
    bfl = diffusers_to_bfl(sd)
    n = check_roundtrip(bfl, sd, 32, prefixed=True)
    print(f"schnell: round trip (prefixed BFL) through diffusers' converter: {n} tensors bit-equal")
    m = dict(meta, config=json.dumps(cfg))
    files["flux_schnell_diffusers.safetensors"] = safetensors_bytes({k: v.to(torch.bfloat16) for k, v in sd.items()}, m)
    files["flux_schnell_bfl_prefixed.safetensors"] = safetensors_bytes({BFL_PREFIX + k: v for k, v in bfl.items()}, m)
    files["flux_schnell_io.safetensors"] = safetensors_bytes(io_t, m)

    with tarfile.open(os.path.join(args.out, "flux_ref.tar.gz"), "w:gz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            print(f"  {name}: {len(data)} bytes")
    print("done")


if __name__ == "__main__":
    sys.exit(main())
