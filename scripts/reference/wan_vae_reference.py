#!/usr/bin/env python3
"""Reference outputs of diffusers' AutoencoderKLWan (the Wan2.1 VAE) for dit4j's Wan VAE tests.

Builds two tiny Wan2.1 VAEs with fixed seeds, runs them in float32 on the CPU (deterministic) and writes, under --out
(default: models/src/test/resources/wanvae):

  a_diffusers/config.json + diffusion_pytorch_model.safetensors   diffusers names                       (BF16)
  a_original.safetensors          original/ComfyUI names (wan_2.1_vae.safetensors layout), no prefix   (BF16)
  a_io.safetensors                inputs and outputs of config a                                      (F32/BF16)
  b_diffusers/config.json + diffusion_pytorch_model.safetensors   diffusers names                       (F16)
  b_original_prefixed.safetensors original names under "vae."                                         (F32)
  b_io.safetensors                inputs and outputs of config b                                      (F32/BF16)
  reference_log.txt               versions, source digest, checks, sizes

Config a has Wan2.1's structure at a tiny width: base_dim 2, dim_mult [1, 2, 4, 4], num_res_blocks 2,
temperal_downsample [False, True, True] (8x spatial, 4x temporal), z_dim 16 with Wan2.1's latents_mean/std.
Video 9 frames of 24x24 -> latent 3 frames of 3x3. Its original-layout file is checked by converting it back with
diffusers' convert_wan_vae_to_diffusers (which hard-codes Wan2.1's decoder indices, so it only fits this structure).
Config b: base_dim 4, dim_mult [1, 2, 2], num_res_blocks 1, temperal_downsample [True, False] (4x spatial, 2x
temporal: the reference still encodes in chunks of 1, 4, 4 frames, each 4-frame chunk giving 2 latent frames),
z_dim 4 with made-up latents_mean/std. Video 9 frames of 16x16 -> latent 5 frames of 4x4. Its original-layout file comes
from the same mapping (the converter cannot check it).

The io files hold (video tensors [1, C, T, H, W]):
  pixels      [T, H, W, 3] 8-bit values (BF16, exact)        x          VideoProcessor.preprocess_video(PIL frames)
  mean        encoder posterior mean (raw latent space)      latent     (mean - latents_mean) / latents_std as the
                                                                         Wan pipelines compute it: * (1/std)
  mean_img    posterior mean of the first frame alone (T = 1)
  z           a random normalised latent                     dec        vae.decode(z / (1/std) + mean), clamped
  dec_raw     the same decode without the final clamp (diffusers' own chunk loop, clamp left out)
  dec_raw_f64 dec_raw computed in float64 (weights and input cast up), stored as float32
  dec_img     decode of z's first latent frame alone (1 frame out)
  dec_u8      postprocess_video(dec, "pil") as 8-bit [T, H, W, 3] (round half to even)           (BF16, exact)
  dec_u8_trunc (postprocess_video(dec, "np") * 255).astype(uint8) as export_to_video does          (BF16, exact)
All parameters lie on the grid of the stored dtype (bf16 for a, fp16 for b), so every file holds exactly the weights
the reference ran with.

Run: PYTHONPATH=<diffusers>/src python3 wan_vae_reference.py [--out DIR]
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import PIL.Image
import torch

torch.use_deterministic_algorithms(True)

import diffusers  # noqa: E402
from diffusers import AutoencoderKLWan  # noqa: E402
from diffusers.loaders import single_file_utils  # noqa: E402
from diffusers.video_processor import VideoProcessor  # noqa: E402

LOG = []


def log(line):
    print(line)
    LOG.append(line)


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


def rel_l2(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


# ----------------------------------------------------------------------------------------------- diffusers -> original

RESNET = {"norm1.gamma": "residual.0.gamma", "conv1.weight": "residual.2.weight", "conv1.bias": "residual.2.bias",
          "norm2.gamma": "residual.3.gamma", "conv2.weight": "residual.6.weight", "conv2.bias": "residual.6.bias",
          "conv_shortcut.weight": "shortcut.weight", "conv_shortcut.bias": "shortcut.bias"}


def diffusers_to_original(sd, num_res_blocks):
    """Our own mapping (models.md §2.8): the original Encoder3d/Decoder3d keep flat module lists. The encoder's list
    index equals diffusers' down_blocks index; the decoder's level i (running order, coarsest first) holds
    num_res_blocks + 1 residual blocks and then (all but the last level) its resample, so resnet j of up_blocks.i is
    upsamples.(i*(R+1) + j) and the upsampler is upsamples.(i*(R+1) + R), R = num_res_blocks + 1."""
    out = {}
    per_level = num_res_blocks + 2
    for k, v in sd.items():
        parts = k.split(".")
        if k.startswith("quant_conv."):
            n = "conv1." + parts[-1]
        elif k.startswith("post_quant_conv."):
            n = "conv2." + parts[-1]
        elif parts[1] == "conv_in":
            n = f"{parts[0]}.conv1.{parts[2]}"
        elif parts[1] == "norm_out":
            n = f"{parts[0]}.head.0.gamma"
        elif parts[1] == "conv_out":
            n = f"{parts[0]}.head.2.{parts[2]}"
        elif parts[1] == "mid_block":
            if parts[2] == "resnets":
                n = f"{parts[0]}.middle.{2 * int(parts[3])}." + RESNET[".".join(parts[4:])]
            else:   # attentions.0.{norm.gamma, to_qkv.*, proj.*}: same names
                n = f"{parts[0]}.middle.1." + ".".join(parts[4:])
        elif parts[1] == "down_blocks":
            rest = ".".join(parts[3:])
            n = f"encoder.downsamples.{parts[2]}." + RESNET.get(rest, rest)   # resample.1.*, time_conv.* unchanged
        elif parts[1] == "up_blocks":
            i = int(parts[2])
            if parts[3] == "resnets":
                n = f"decoder.upsamples.{i * per_level + int(parts[4])}." + RESNET[".".join(parts[5:])]
            else:   # upsamplers.0.{resample.1.*, time_conv.*}
                n = f"decoder.upsamples.{i * per_level + per_level - 1}." + ".".join(parts[5:])
        else:
            raise KeyError(k)
        assert n not in out, n
        out[n] = v
    assert len(out) == len(sd)
    return out


def check_roundtrip(original, sd):
    """Convert our original-layout dict back with diffusers' own converter; require bit equality."""
    back = single_file_utils.convert_wan_vae_to_diffusers({k: v.clone() for k, v in original.items()})
    assert back.keys() == sd.keys(), sorted(set(back) ^ set(sd))[:10]
    for k in sd:
        assert back[k].shape == sd[k].shape and torch.equal(back[k], sd[k]), f"round trip differs at {k}"
    return len(back)


# ----------------------------------------------------------------------------------------------- models

def randomize(model, gen, grid):
    """Random weights on the grid of `grid`: weights N(0, 1/fan_in), biases N(0, 0.1^2), RMS-norm gammas
    1 + N(0, 0.2^2)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".weight"):
                v = torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel())
            elif name.endswith(".bias"):
                v = 0.1 * torch.randn(p.shape, generator=gen)
            elif name.endswith(".gamma"):
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
            else:
                raise KeyError(name)
            p.copy_(v.to(grid).to(torch.float32))


def decode_unclamped(vae, raw):
    """AutoencoderKLWan._decode's own loop (one latent frame per decoder call, feature cache) without the clamp."""
    vae.clear_cache()
    x = vae.post_quant_conv(raw)
    outs = []
    for i in range(raw.shape[2]):
        vae._conv_idx = [0]
        outs.append(vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx, first_chunk=i == 0))
    vae.clear_cache()
    return torch.cat(outs, 2)


def build(name, seed, cfg, grid, frames, size, z_frames, factor):
    gen = torch.Generator().manual_seed(seed)
    vae = AutoencoderKLWan(**cfg).to(torch.float32).eval()
    randomize(vae, gen, grid)
    zd = vae.config.z_dim
    mean_t = torch.tensor(vae.config.latents_mean).view(1, zd, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, zd, 1, 1, 1)

    pixels = torch.randint(0, 256, (frames, size, size, 3), generator=gen, dtype=torch.uint8)
    proc = VideoProcessor(vae_scale_factor=8)
    x = proc.preprocess_video([PIL.Image.fromarray(f) for f in pixels.numpy()])      # [1, 3, T, H, W]
    manual = (2.0 * (pixels.float() / 255.0) - 1.0).permute(3, 0, 1, 2).unsqueeze(0)
    log(f"[{name}] preprocess_video == 2*(p/255)-1 exactly: {torch.equal(x, manual)}; x {tuple(x.shape)} {x.dtype}")
    assert torch.equal(x, manual)

    zs = (1, zd, z_frames) + (size // factor, size // factor)
    z = torch.randn(zs, generator=gen)
    with torch.no_grad():
        mean = vae.encode(x).latent_dist.mean
        mean_img = vae.encode(x[:, :, :1]).latent_dist.mean
        latent = (mean - mean_t) * inv_std
        raw = z / inv_std + mean_t
        dec = vae.decode(raw).sample
        dec_raw = decode_unclamped(vae, raw)
        dec_img = vae.decode(raw[:, :, :1]).sample
    assert torch.equal(dec, dec_raw.clamp(-1, 1)), "diffusers' decode is not clamp(our replay of its loop)"
    with torch.no_grad():   # the float32 reference's own rounding error, against float64
        v64 = AutoencoderKLWan(**cfg).double().eval()
        v64.load_state_dict({k: v.double() for k, v in vae.state_dict().items()})
        mean64 = v64.encode(x.double()).latent_dist.mean
        dec64 = decode_unclamped(v64, raw.double())
    log(f"[{name}] float32 reference vs float64: rel-L2 mean {rel_l2(mean, mean64):.2e}, dec_raw {rel_l2(dec_raw, dec64):.2e}")
    pil = proc.postprocess_video(dec, output_type="pil")[0]
    dec_u8 = torch.from_numpy(np.stack([np.array(im) for im in pil]))                  # [T, H, W, 3]
    as_np = proc.postprocess_video(dec, output_type="np")[0]
    dec_u8_trunc = torch.from_numpy((as_np * 255).astype(np.uint8))
    manual_u8 = torch.round((dec[0].permute(1, 2, 3, 0) * 0.5 + 0.5).clamp(0, 1) * 255)
    log(f"[{name}] postprocess 'pil' == round_half_even(clamp(x/2+.5)*255): {torch.equal(dec_u8.float(), manual_u8)}")
    assert torch.equal(dec_u8.float(), manual_u8)
    log(f"[{name}] mean {tuple(mean.shape)} std {mean.std():.4f}; dec {tuple(dec.shape)} raw std {dec_raw.std():.4f} "
        f"min {dec_raw.min():.3f} max {dec_raw.max():.3f}, clamped fraction {(dec_raw.abs() > 1).float().mean():.3f}; "
        f"8-bit round vs trunc differ at {(dec_u8 != dec_u8_trunc).float().mean():.3f}")
    io = dict(pixels=pixels.to(torch.bfloat16), x=x, mean=mean, mean_img=mean_img, latent=latent, z=z, dec=dec,
              dec_raw=dec_raw, dec_raw_f64=dec64.float(), dec_img=dec_img, dec_u8=dec_u8.to(torch.bfloat16),
              dec_u8_trunc=dec_u8_trunc.to(torch.bfloat16))
    return vae, {k: v.contiguous() for k, v in io.items()}


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "models", "src", "test", "resources", "wanvae"))
    args = ap.parse_args()
    out_dir = os.path.normpath(args.out)
    src = os.path.dirname(diffusers.__file__)
    digest = hashlib.sha256()
    for f in ("models/autoencoders/autoencoder_kl_wan.py", "loaders/single_file_utils.py", "video_processor.py",
              "image_processor.py"):
        digest.update(open(os.path.join(src, f), "rb").read())
    meta = {"generator": "scripts/reference/wan_vae_reference.py", "torch": torch.__version__,
            "diffusers": diffusers.__version__, "diffusers_wan_vae_sources_sha256": digest.hexdigest(),
            "device": "cpu float32, deterministic algorithms"}
    log(json.dumps(meta))
    files = {}

    # ---- a: Wan2.1's structure
    cfg_a = dict(base_dim=2, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                 temperal_downsample=[False, True, True], dropout=0.0)
    vae, io = build("a", 2026, cfg_a, torch.bfloat16, frames=9, size=24, z_frames=3, factor=8)
    sd = {k: v.clone() for k, v in vae.state_dict().items()}
    orig = diffusers_to_original(sd, cfg_a["num_res_blocks"])
    n = check_roundtrip(orig, sd)
    log(f"[a] diffusers->original->diffusers round trip through diffusers' convert_wan_vae_to_diffusers: "
        f"{n} tensors bit-equal")
    m = dict(meta, config=json.dumps(cfg_a))
    files["a_diffusers/diffusion_pytorch_model.safetensors"] = safetensors_bytes({k: v.bfloat16() for k, v in sd.items()}, m)
    files["a_diffusers/config.json"] = vae.to_json_string().encode()
    files["a_original.safetensors"] = safetensors_bytes({k: v.bfloat16() for k, v in orig.items()}, m)
    files["a_io.safetensors"] = safetensors_bytes(io, m)

    # ---- b: another shape of the same family
    cfg_b = dict(base_dim=4, z_dim=4, dim_mult=[1, 2, 2], num_res_blocks=1, attn_scales=[],
                 temperal_downsample=[True, False], dropout=0.0,
                 latents_mean=[0.25, -0.5, 0.125, 1.0], latents_std=[1.5, 0.75, 2.0, 1.25])
    vae, io = build("b", 7, cfg_b, torch.float16, frames=9, size=16, z_frames=3, factor=4)
    sd = {k: v.clone() for k, v in vae.state_dict().items()}
    orig = diffusers_to_original(sd, cfg_b["num_res_blocks"])
    m = dict(meta, config=json.dumps(cfg_b))
    files["b_diffusers/diffusion_pytorch_model.safetensors"] = safetensors_bytes({k: v.half() for k, v in sd.items()}, m)
    files["b_diffusers/config.json"] = vae.to_json_string().encode()
    files["b_original_prefixed.safetensors"] = safetensors_bytes({"vae." + k: v for k, v in orig.items()}, m)
    files["b_io.safetensors"] = safetensors_bytes(io, m)

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
