#!/usr/bin/env python3
"""Reference outputs for org.dit4j.models.vae (diffusers AutoencoderKL, the Flux VAE architecture).

Builds two tiny AutoencoderKL models from fixed configs with a fixed seed, in float32 on the CPU (TF32 off),
randomises every parameter (GroupNorm affine included) and writes, under OUT_DIR:

  <name>_diffusers.safetensors   the state dict in diffusers naming (what `vae/diffusion_pytorch_model.safetensors` holds)
  <name>_bfl.safetensors         the same tensors in BFL / ComfyUI `ae.safetensors` naming (attention q/k/v/proj_out as
                                 1x1 convs [C,C,1,1], decoder `up.{i}` index order reversed), optionally under a prefix.
                                 Checked here: diffusers' own convert_ldm_vae_checkpoint maps it back to exactly the
                                 diffusers state dict.
  <name>_io.safetensors          inputs and outputs (all float32):
     pixels      [B,H,W,3]  8-bit RGB values of the input images
     x           [B,3,H,W]  VaeImageProcessor.preprocess(pixels): 2*(p/255)-1
     mean        [B,L,h,w]  vae.encode(x).latent_dist.mean (raw, unscaled)
     latent      [B,L,h,w]  (mean - shift) * scaling        (what Flux Kontext feeds the transformer)
     z           [B,L,h,w]  a random latent in the transformer's (scaled) space
     dec         [B,3,H,W]  vae.decode(z / scaling + shift).sample
     dec_tiled   [B,3,H,W]  vae.tiled_decode(z / scaling + shift).sample   (tiles from config sample_size)
     dec_u8      [B,H,W,3]  VaeImageProcessor.postprocess(dec, "pil") as 8-bit values
     __metadata__: config (vae.to_json_string()), tiling parameters, versions

Configs:
  flux_tiny  block_out_channels [8,16,16], layers_per_block 2, latent 16, 4 groups, no quant convs, mid attention,
             scaling 0.3611 / shift 0.1159 (Flux's), batch 2, image 24x32, sample_size 16 -> tiles of 4 latents
  sd_tiny    block_out_channels [8,16], layers_per_block 1, latent 4, 4 groups, quant_conv + post_quant_conv,
             no mid attention, scaling 0.18215, no shift, batch 1, image 16x16, sample_size 8 -> tiles of 4 latents;
             its BFL file carries the prefix "first_stage_model." (SD single-file checkpoints)

Usage:  python3 vae_reference.py --out OUT_DIR
Needs torch, numpy, PIL, safetensors and diffusers (PYTHONPATH to its src/).
"""
import argparse
import json
import re
import sys
import time
import traceback

import numpy as np
import torch

CONFIGS = {
    "flux_tiny": dict(
        model=dict(in_channels=3, out_channels=3,
                   down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                   block_out_channels=(8, 16, 16), layers_per_block=2, latent_channels=16, norm_num_groups=4,
                   sample_size=16, scaling_factor=0.3611, shift_factor=0.1159,
                   use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=True),
        batch=2, height=24, width=32, seed=1234, bfl_prefix=""),
    "sd_tiny": dict(
        model=dict(in_channels=3, out_channels=3,
                   down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                   block_out_channels=(8, 16), layers_per_block=1, latent_channels=4, norm_num_groups=4,
                   sample_size=8, scaling_factor=0.18215, shift_factor=None,
                   use_quant_conv=True, use_post_quant_conv=True, mid_block_add_attention=False),
        batch=1, height=16, width=16, seed=4321, bfl_prefix="first_stage_model."),
}


def log(*a):
    print(*a, flush=True)


def rel_l2(a, b):
    a = a.double()
    b = b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def save(path, tensors, metadata=None):
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    try:
        from safetensors.torch import save_file
        save_file(tensors, path, metadata=metadata)
    except ImportError:
        import struct
        header, blobs, off = {}, [], 0
        if metadata:
            header["__metadata__"] = metadata
        for k, v in tensors.items():
            assert v.dtype == torch.float32, k
            b = v.numpy().astype("<f4").tobytes()
            header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
            off += len(b)
            blobs.append(b)
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for b in blobs:
                f.write(b)
    log(f"wrote {path}: {len(tensors)} tensors")


ATTN_NAMES = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def diffusers_to_bfl(sd, levels, prefix):
    """Our own diffusers -> BFL renaming (checked below against diffusers' convert_ldm_vae_checkpoint)."""
    out = {}
    for k, v in sd.items():
        nk = None
        if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", k):
            nk = f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", k):
            nk = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", k):
            nk = f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.{m[3]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", k):
            nk = f"decoder.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", k):
            nk = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(weight|bias)", k):
            nk = f"{m[1]}.mid.attn_1.{ATTN_NAMES[m[2]]}.{m[3]}"
            if m[2] != "group_norm" and m[3] == "weight":
                v = v[:, :, None, None]
        elif m := re.fullmatch(r"(encoder|decoder)\.conv_norm_out\.(.+)", k):
            nk = f"{m[1]}.norm_out.{m[2]}"
        elif re.fullmatch(r"(encoder|decoder)\.conv_(in|out)\.(weight|bias)|(post_)?quant_conv\.(weight|bias)", k):
            nk = k
        if nk is None:
            raise ValueError(f"no BFL name for diffusers tensor {k}")
        nk = nk.replace("conv_shortcut", "nin_shortcut")
        out[prefix + nk] = v.clone().contiguous()
    return out


def randomise(vae, gen):
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if "norm" in name:  # GroupNorm affine: norm1, norm2, conv_norm_out, group_norm
                if name.endswith("weight"):
                    p.copy_(1 + 0.25 * torch.randn(p.shape, generator=gen))
                else:
                    p.copy_(0.25 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            # conv/linear weights keep PyTorch's default (Kaiming-uniform) init from the seeded global generator


def run_config(name, spec, out_dir):
    from diffusers import AutoencoderKL
    from diffusers.image_processor import VaeImageProcessor
    import PIL.Image

    cfg = spec["model"]
    torch.manual_seed(spec["seed"])
    vae = AutoencoderKL(**cfg).eval()
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    randomise(vae, gen)
    levels = len(cfg["block_out_channels"])
    factor = 2 ** (levels - 1)
    scaling = cfg["scaling_factor"]
    shift = cfg["shift_factor"] or 0.0
    B, H, W, L = spec["batch"], spec["height"], spec["width"], cfg["latent_channels"]
    h, w = H // factor, W // factor

    pixels = torch.randint(0, 256, (B, H, W, 3), generator=gen, dtype=torch.uint8)
    z = torch.randn(B, L, h, w, generator=gen)

    with torch.no_grad():
        # scale conv_out so that decoded images are O(1) (the 8-bit check then rounds rather than only clamps)
        raw = z / scaling + shift
        std = float(vae.decode(raw).sample.std())
        vae.decoder.conv_out.weight.mul_(0.6 / std)
        vae.decoder.conv_out.bias.mul_(0.6 / std)

        proc = VaeImageProcessor(vae_scale_factor=factor)
        x = proc.preprocess([PIL.Image.fromarray(p.numpy()) for p in pixels])
        manual = 2.0 * (pixels.permute(0, 3, 1, 2).float() / 255.0) - 1.0
        log(f"[{name}] preprocess == 2*(p/255)-1 exactly: {torch.equal(x, manual)}; x {tuple(x.shape)} {x.dtype}")
        mean = vae.encode(x).latent_dist.mean
        latent = (mean - shift) * scaling
        dec = vae.decode(raw).sample
        dec_tiled = vae.tiled_decode(raw).sample
        u8 = np.stack([np.array(im) for im in proc.postprocess(dec, output_type="pil")])
        u8_manual = np.round((dec * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
        log(f"[{name}] postprocess == round(clamp(x/2+.5)*255): {np.array_equal(u8, u8_manual)}")

    log(f"[{name}] mean std {float(mean.std()):.4f}, dec std {float(dec.std()):.4f} min {float(dec.min()):.3f} "
        f"max {float(dec.max()):.3f}, clamped fraction {float(((dec < -1) | (dec > 1)).float().mean()):.3f}")
    tile_latent = vae.tile_latent_min_size
    overlap_size = int(tile_latent * (1 - vae.tile_overlap_factor))
    blend = int(vae.tile_sample_min_size * vae.tile_overlap_factor)
    tiling = dict(tile_latent=tile_latent, overlap_latent=tile_latent - overlap_size, stride_latent=overlap_size,
                  blend_extent=blend, row_limit=vae.tile_sample_min_size - blend)
    log(f"[{name}] tiling {tiling}; rel-L2(tiled, untiled) = {rel_l2(dec_tiled, dec):.4e}")

    sd = {k: v.detach().clone() for k, v in vae.state_dict().items()}
    save(f"{out_dir}/{name}_diffusers.safetensors", sd)

    bfl = diffusers_to_bfl(sd, levels, spec["bfl_prefix"])
    try:
        from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
        back = convert_ldm_vae_checkpoint(dict(bfl), dict(vae.config))
        same_keys = set(back) == set(sd)
        same_vals = same_keys and all(torch.equal(back[k], sd[k]) for k in sd)
        log(f"[{name}] convert_ldm_vae_checkpoint(BFL file) == diffusers state dict: keys {same_keys}, values {same_vals}")
        if not same_keys:
            log(f"   only in converted: {sorted(set(back) - set(sd))[:10]}; only in diffusers: {sorted(set(sd) - set(back))[:10]}")
        # and the converted dict loads into a fresh model with nothing missing or unexpected
        fresh = AutoencoderKL(**cfg)
        res = fresh.load_state_dict(back, strict=True)
        log(f"[{name}] strict load of converted dict: {res}")
    except Exception:
        log(f"[{name}] BFL round-trip check FAILED:\n{traceback.format_exc()}")
    save(f"{out_dir}/{name}_bfl.safetensors", bfl)

    import diffusers
    meta = {"config": vae.to_json_string(), "tiling": json.dumps(tiling),
            "torch": torch.__version__, "diffusers": diffusers.__version__,
            "scaling_factor": repr(scaling), "shift_factor": repr(shift)}
    io = {"pixels": pixels.float(), "x": x, "mean": mean, "latent": latent, "z": z, "dec": dec,
          "dec_tiled": dec_tiled, "dec_u8": torch.from_numpy(u8.astype(np.float32))}
    save(f"{out_dir}/{name}_io.safetensors", io, meta)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(4)
    log(f"python {sys.version.split()[0]}, torch {torch.__version__}")
    failed = 0
    for name, spec in CONFIGS.items():
        if args.only and name != args.only:
            continue
        t0 = time.time()
        try:
            run_config(name, spec, args.out)
        except Exception:
            failed += 1
            log(f"[{name}] FAILED:\n{traceback.format_exc()}")
        log(f"[{name}] {time.time() - t0:.1f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
