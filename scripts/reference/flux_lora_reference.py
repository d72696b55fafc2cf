#!/usr/bin/env python3
"""Reference data for dit4j's Flux LoRA loading: tiny LoRA files in several key styles, fused by diffusers itself.

Base model: the tiny dev transformer committed by flux_reference.py (models/src/test/resources/flux/flux_dev_diffusers,
float32). For each case below the script writes a LoRA file, loads it into a fresh copy of the base model through
diffusers' own LoRA loading (FluxLoraLoaderMixin.load_lora_weights: style detection, kohya/xlabs conversion, alphas,
PEFT metadata), fuses it with diffusers/PEFT (fuse_lora, float32 on the CPU), and writes

  lora_<name>.safetensors   the LoRA file as a user would download it
  fused_<case>.safetensors  every diffusers tensor that the fusion changed (float32, diffusers names), plus "out":
                            the fused model's output on the inputs of flux_dev_io.safetensors

Cases (strengths are diffusers' lora_scale / set_adapters weights):
  peft      lora_peft.safetensors: written by diffusers' save_lora_weights from a PEFT adapter (keys
            "transformer.<module>.lora_A/lora_B.weight"), r=4, lora_alpha=8, a rank_pattern and an alpha_pattern
            in the "lora_adapter_metadata" header entry; strength 0.8
  rslora    lora_rslora.safetensors: as peft with use_rslora (scale alpha/sqrt(r)); strength 1.0
  alphas    lora_alphas.safetensors: diffusers names with per-module ".alpha" tensors (no metadata), mixed F32/BF16;
            strength 1.0
  kohya     lora_kohya.safetensors: sd-scripts names "lora_unet_double_blocks_0_img_attn_qkv.lora_down/lora_up/alpha"
            on fused qkv/linear1 (one block-diagonal "split" qkv), the final layer, embedders; BF16; strength 0.7
  comfy     lora_comfy.safetensors: BFL names under "diffusion_model." with lora_down/lora_up/alpha; strength 1.3
  xlabs     lora_xlabs.safetensors: XLabs "double_blocks.0.processor.qkv_lora1.down.weight" names; strength 1.0
  peft+kohya  both adapters at once, strengths 0.8 and 0.7

Where diffusers and ComfyUI disagree the cases stay out of the difference: diffusers ignores the ".alpha" of the kohya
final layer (ComfyUI uses it), so that alpha equals the rank; when only some modules carry an alpha diffusers uses the
most common alpha for the others (ComfyUI: scale 1), so the alphas case gives every module one. The script also checks
every fused tensor against W + strength·(alpha/rank)·B·A computed here from the file (final-layer rows swapped for BFL
names, q/k/v rows placed in the fused tensors) and prints the largest difference.

diffusers' kohya converter hard-codes FLUX.1's single-block row split (3072, 3072, 3072, 12288); for the tiny model
this script substitutes (32, 32, 32, 128) in that one literal of the converter's source and runs it otherwise unchanged.
The same converter (diffusers 0.40.0.dev0) names the modules outside the blocks (img_in, txt_in, time_in, vector_in,
guidance_in, final_layer) without the "transformer." prefix, so load_lora_weights silently skips them; the script adds
the prefix back to the converted state dict before loading it (ComfyUI applies those modules, and so does dit4j).

Run (CPU, a few seconds): PYTHONPATH=<diffusers>/src python3 flux_lora_reference.py --base <flux_dev_diffusers dir>
      --io <flux_dev_io.safetensors> --out <dir>      (needs torch, diffusers, peft, safetensors)
"""
import argparse
import inspect
import json
import math
import os
import re
import sys

import torch

torch.use_deterministic_algorithms(True)

import diffusers  # noqa: E402
import peft  # noqa: E402
from diffusers import FluxTransformer2DModel  # noqa: E402
from diffusers.loaders import lora_conversion_utils, lora_pipeline  # noqa: E402
from diffusers.loaders.lora_pipeline import FluxLoraLoaderMixin  # noqa: E402
from peft import LoraConfig  # noqa: E402
from peft.utils import get_peft_model_state_dict  # noqa: E402
from safetensors import safe_open
from safetensors.torch import load_file, save_file  # noqa: E402

D, MLP = 32, 128          # hidden size and MLP width of the tiny dev model


def patch_kohya_dims():
    """Replace the FLUX.1-sized single-block split in diffusers' kohya converter by the tiny model's."""
    src = inspect.getsource(lora_conversion_utils._convert_kohya_flux_lora_to_diffusers)
    old = "dims=[3072, 3072, 3072, 12288]"
    assert src.count(old) == 1, "diffusers' kohya converter changed: the single-block split literal is not there once"
    ns = lora_conversion_utils.__dict__
    exec(compile(src.replace(old, f"dims=[{D}, {D}, {D}, {MLP}]"), lora_conversion_utils.__file__, "exec"), ns)
    lora_pipeline._convert_kohya_flux_lora_to_diffusers = ns["_convert_kohya_flux_lora_to_diffusers"]


class Holder(FluxLoraLoaderMixin):
    """The LoRA-loading half of a FluxPipeline, holding only the transformer."""

    hf_device_map = None

    def __init__(self, transformer):
        self.transformer = transformer
        self.text_encoder = None
        self.components = {"transformer": transformer}


# ----------------------------------------------------------------------------------------------- LoRA files

def rnd(gen, *shape, std=1.0):
    return torch.randn(shape, generator=gen) * std


def pair(gen, rows, cols, rank, dtype=torch.float32):
    """(down A [rank, cols], up B [rows, rank]) large enough to move the weights visibly."""
    a = rnd(gen, rank, cols, std=1 / math.sqrt(cols)).to(dtype)
    b = rnd(gen, rows, rank, std=0.3 / math.sqrt(rank)).to(dtype)
    return a, b


def peft_file(path, base_dir, gen, rslora):
    """A LoRA trained-and-saved the diffusers way: PEFT adapter on the transformer, save_lora_weights with metadata."""
    model = FluxTransformer2DModel.from_pretrained(base_dir).float()
    targets = [
        r"transformer_blocks\.0\.attn\.to_q", r"transformer_blocks\.0\.attn\.to_k", r"transformer_blocks\.0\.attn\.add_v_proj",
        r"transformer_blocks\.1\.attn\.to_out\.0", r"transformer_blocks\.1\.ff\.net\.0\.proj",
        r"transformer_blocks\.0\.ff_context\.net\.2", r"transformer_blocks\.1\.norm1_context\.linear",
        r"single_transformer_blocks\.0\.attn\.to_v", r"single_transformer_blocks\.1\.proj_mlp",
        r"single_transformer_blocks\.1\.proj_out", r"single_transformer_blocks\.0\.norm\.linear",
        r"norm_out\.linear", r"proj_out", r"x_embedder", r"context_embedder",
        r"time_text_embed\.guidance_embedder\.linear_1", r"time_text_embed\.text_embedder\.linear_2",
    ]
    if rslora:
        targets = targets[:4] + [r"norm_out\.linear", r"single_transformer_blocks\.1\.proj_mlp"]
        cfg = LoraConfig(r=4, lora_alpha=6, use_rslora=True, target_modules="^(" + "|".join(targets) + ")$")
    else:
        cfg = LoraConfig(r=4, lora_alpha=8, target_modules="^(" + "|".join(targets) + ")$",
                         rank_pattern={"^proj_out": 2, "single_transformer_blocks.1.proj_mlp": 6},
                         alpha_pattern={"transformer_blocks.0.attn.to_k": 2, "^norm_out.linear": 3})
    model.add_adapter(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name:
                p.copy_(rnd(gen, *p.shape, std=1 / math.sqrt(p.shape[1])))
            elif "lora_B" in name:
                p.copy_(rnd(gen, *p.shape, std=0.3 / math.sqrt(p.shape[1])))
    layers = get_peft_model_state_dict(model)
    d = os.path.dirname(path)
    FluxLoraLoaderMixin.save_lora_weights(d, transformer_lora_layers=layers, weight_name=os.path.basename(path),
                                          transformer_lora_adapter_metadata=model.peft_config["default"].to_dict())


def alphas_file(path, gen):
    """diffusers names, "transformer." prefix, an ".alpha" per module (the network_alphas route); F32 and BF16."""
    sd = {}
    mods = [("transformer_blocks.0.attn.to_v", D, D, 4, 2.0, torch.float32),
            ("transformer_blocks.1.attn.add_q_proj", D, D, 2, 8.0, torch.bfloat16),
            ("transformer_blocks.1.attn.add_k_proj", D, D, 2, 8.0, torch.bfloat16),
            ("transformer_blocks.0.ff.net.2", D, MLP, 4, 4.0, torch.float32),
            ("transformer_blocks.0.norm1.linear", 6 * D, D, 3, 1.0, torch.float32),
            ("single_transformer_blocks.0.attn.to_q", D, D, 4, 8.0, torch.float32),
            ("single_transformer_blocks.0.proj_mlp", MLP, D, 4, 8.0, torch.bfloat16),
            ("single_transformer_blocks.1.attn.to_k", D, D, 4, 8.0, torch.float32),
            ("norm_out.linear", 2 * D, D, 4, 8.0, torch.float32),
            ("time_text_embed.timestep_embedder.linear_2", D, D, 2, 2.0, torch.float32)]
    for m, rows, cols, r, alpha, dt in mods:
        a, b = pair(gen, rows, cols, r, dt)
        sd[f"transformer.{m}.lora_A.weight"] = a
        sd[f"transformer.{m}.lora_B.weight"] = b
        sd[f"transformer.{m}.alpha"] = torch.tensor(alpha, dtype=torch.float32)
    save_file(sd, path)


def kohya_file(path, gen):
    """sd-scripts (kohya) names over BFL modules, BF16, scalar alphas; one qkv LoRA in the block-diagonal split form."""
    sd = {}
    mods = [("double_blocks_0_img_attn_qkv", 3 * D, D, 4, 2.0), ("double_blocks_0_txt_mod_lin", 6 * D, D, 4, None),
            ("double_blocks_1_img_mlp_2", D, MLP, 4, None), ("double_blocks_1_txt_attn_proj", D, D, 8, 4.0),
            ("single_blocks_1_linear1", 3 * D + MLP, D, 8, 4.0), ("single_blocks_0_linear2", D, D + MLP, 4, 16.0),
            ("single_blocks_1_modulation_lin", 3 * D, D, 2, 1.0),
            ("final_layer_adaLN_modulation_1", 2 * D, D, 4, 4.0), ("final_layer_linear", 64, D, 4, None),
            ("img_in", D, 64, 4, 2.0), ("txt_in", D, 32, 2, 2.0), ("time_in_out_layer", D, D, 4, 8.0),
            ("vector_in_in_layer", D, 24, 4, 4.0), ("guidance_in_in_layer", D, 256, 4, 4.0)]
    for m, rows, cols, r, alpha in mods:
        a, b = pair(gen, rows, cols, r, torch.bfloat16)
        sd[f"lora_unet_{m}.lora_down.weight"] = a
        sd[f"lora_unet_{m}.lora_up.weight"] = b
        if alpha is not None:
            sd[f"lora_unet_{m}.alpha"] = torch.tensor(alpha, dtype=torch.bfloat16)
    # split-qkv training (sd-scripts split_qkv): rank 3·2, each of q, k, v sees its own two rows of A
    a, _ = pair(gen, 3 * D, D, 6, torch.bfloat16)
    b = torch.zeros(3 * D, 6, dtype=torch.bfloat16)
    for j in range(3):
        b[j * D:(j + 1) * D, 2 * j:2 * j + 2] = rnd(gen, D, 2, std=0.2).to(torch.bfloat16)
    sd["lora_unet_double_blocks_1_txt_attn_qkv.lora_down.weight"] = a
    sd["lora_unet_double_blocks_1_txt_attn_qkv.lora_up.weight"] = b
    sd["lora_unet_double_blocks_1_txt_attn_qkv.alpha"] = torch.tensor(3.0, dtype=torch.bfloat16)
    save_file(sd, path)


def comfy_file(path, gen):
    """BFL module names under "diffusion_model." with lora_down/lora_up/alpha (ComfyUI's own naming)."""
    sd = {}
    mods = [("double_blocks.1.img_attn.qkv", 3 * D, D, 4, 8.0), ("double_blocks.0.img_mlp.0", MLP, D, 4, 2.0),
            ("double_blocks.1.txt_mlp.0", MLP, D, 2, None), ("single_blocks.0.linear1", 3 * D + MLP, D, 4, 1.0),
            ("single_blocks.1.linear2", D, D + MLP, 4, 4.0), ("final_layer.adaLN_modulation.1", 2 * D, D, 2, None),
            ("time_in.in_layer", D, 256, 4, 4.0), ("guidance_in.out_layer", D, D, 4, 16.0)]
    for m, rows, cols, r, alpha in mods:
        a, b = pair(gen, rows, cols, r, torch.float32)
        sd[f"diffusion_model.{m}.lora_down.weight"] = a
        sd[f"diffusion_model.{m}.lora_up.weight"] = b
        if alpha is not None:
            sd[f"diffusion_model.{m}.alpha"] = torch.tensor(alpha)
    save_file(sd, path)


def xlabs_file(path, gen):
    """XLabs-AI names (processor LoRAs; no alpha)."""
    sd = {}
    mods = [("double_blocks.0.processor.qkv_lora1", 3 * D, D, 4), ("double_blocks.1.processor.qkv_lora2", 3 * D, D, 4),
            ("double_blocks.1.processor.proj_lora1", D, D, 4), ("double_blocks.0.processor.proj_lora2", D, D, 2),
            ("single_blocks.1.processor.qkv_lora", 3 * D, D, 4), ("single_blocks.0.processor.proj_lora", D, D + MLP, 4)]
    for m, rows, cols, r in mods:
        a, b = pair(gen, rows, cols, r, torch.bfloat16)
        sd[f"{m}.down.weight"] = a
        sd[f"{m}.up.weight"] = b
    save_file(sd, path)


# ----------------------------------------------------------------------------------------------- independent ΔW

KOHYA_TO_DIFFUSERS = {
    "img_attn_qkv": (["attn.to_q", "attn.to_k", "attn.to_v"], [D, D, D]),
    "txt_attn_qkv": (["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"], [D, D, D]),
    "img_attn_proj": (["attn.to_out.0"], None), "txt_attn_proj": (["attn.to_add_out"], None),
    "img_mlp_0": (["ff.net.0.proj"], None), "img_mlp_2": (["ff.net.2"], None),
    "txt_mlp_0": (["ff_context.net.0.proj"], None), "txt_mlp_2": (["ff_context.net.2"], None),
    "img_mod_lin": (["norm1.linear"], None), "txt_mod_lin": (["norm1_context.linear"], None),
    "linear1": (["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"], [D, D, D, MLP]),
    "linear2": (["proj_out"], None), "modulation_lin": (["norm.linear"], None),
}
TOP = {"final_layer_adaLN_modulation_1": "norm_out.linear", "final_layer_linear": "proj_out", "img_in": "x_embedder",
       "txt_in": "context_embedder", "time_in_in_layer": "time_text_embed.timestep_embedder.linear_1",
       "time_in_out_layer": "time_text_embed.timestep_embedder.linear_2",
       "vector_in_in_layer": "time_text_embed.text_embedder.linear_1",
       "vector_in_out_layer": "time_text_embed.text_embedder.linear_2",
       "guidance_in_in_layer": "time_text_embed.guidance_embedder.linear_1",
       "guidance_in_out_layer": "time_text_embed.guidance_embedder.linear_2"}


def bfl_module_deltas(module_us, delta):
    """Split a ΔW of a BFL module (underscored, without prefix) into diffusers-module ΔWs."""
    if module_us in TOP:
        if module_us == "final_layer_adaLN_modulation_1":
            shift, scale = delta.chunk(2, 0)
            delta = torch.cat([scale, shift], 0)
        return {TOP[module_us]: delta}
    parts = module_us.split("_")
    kind, idx = parts[0], parts[2]
    rest = "_".join(parts[3:])
    prefix = f"transformer_blocks.{idx}." if kind == "double" else f"single_transformer_blocks.{idx}."
    mods, split = KOHYA_TO_DIFFUSERS[rest]
    if split is None:
        return {prefix + mods[0]: delta}
    rows = delta.shape[0]
    if rows != sum(split):          # xlabs single qkv: the first three parts only
        split, mods = split[:3], mods[:3]
    return {prefix + m: d for m, d in zip(mods, torch.split(delta, split, 0))}


def expected_deltas(case_file, kind, metadata):
    """{diffusers module: ΔW at strength 1} from the file, by the formula dit4j implements."""
    sd = load_file(case_file)
    out = {}

    def add(mod, d):
        out[mod] = out.get(mod, 0) + d

    if kind in ("peft", "rslora", "alphas"):
        meta = json.loads(metadata["lora_adapter_metadata"]) if metadata else None
        for k in sd:
            if not k.endswith(".lora_A.weight"):
                continue
            mod = k[len("transformer."):-len(".lora_A.weight")]
            a, b = sd[k].double(), sd[k.replace("lora_A", "lora_B")].double()
            r = a.shape[0]
            if meta:
                alpha = meta["transformer.lora_alpha"]
                for pat, v in meta["transformer.alpha_pattern"].items():
                    if re.match(rf"(.*\.)?({pat})$", mod):
                        alpha = v
                        break
                scale = alpha / math.sqrt(r) if meta["transformer.use_rslora"] else alpha / r
            else:
                ak = f"transformer.{mod}.alpha"
                scale = sd[ak].item() / r if ak in sd else 1.0
            add(mod, scale * (b @ a))
    elif kind in ("kohya", "comfy", "xlabs"):
        downs = [k for k in sd if k.endswith(("lora_down.weight", ".down.weight"))]
        for k in downs:
            up = k.replace("lora_down", "lora_up") if "lora_down" in k else k.replace(".down.", ".up.")
            a, b = sd[k].double(), sd[up].double()
            r = a.shape[0]
            base = k[: k.rindex(".lora_down") if "lora_down" in k else k.rindex(".down")]
            ak = base + ".alpha"
            scale = sd[ak].item() / r if ak in sd else 1.0
            if kind == "xlabs":
                blk, idx, _, proc = base.split(".")
                xl = {"qkv_lora1": "img_attn_qkv", "qkv_lora2": "txt_attn_qkv", "proj_lora1": "img_attn_proj",
                      "proj_lora2": "txt_attn_proj", "qkv_lora": "linear1", "proj_lora": "linear2"}[proc]
                mod_us = f"{blk}_{idx}_{xl}"
            elif kind == "comfy":
                mod_us = base[len("diffusion_model."):].replace(".", "_")
            else:
                mod_us = base[len("lora_unet_"):]
            for mod, d in bfl_module_deltas(mod_us, scale * (b @ a)).items():
                add(mod, d)
    return out


# ----------------------------------------------------------------------------------------------- fusing

def fused(base_dir, loras, io):
    """Loads each (file, adapter, strength) through diffusers, fuses, returns (state dict, output)."""
    model = FluxTransformer2DModel.from_pretrained(base_dir).float().eval()
    holder = Holder(model)
    for path, name, _ in loras:
        sd = FluxLoraLoaderMixin.lora_state_dict(path)
        dropped = [k for k in sd if not k.startswith(("transformer.", "text_encoder."))]
        if dropped:
            # diffusers' kohya converter names the modules outside the blocks without the "transformer." prefix, and
            # load_lora_weights then skips them silently; put the prefix back so that they are fused (and compared)
            sd = {("transformer." + k if k in dropped else k): v for k, v in sd.items()}
            print(f"  {name}: re-prefixed {len(dropped) // 2} modules diffusers' converter left unprefixed")
            holder.load_lora_weights(sd, adapter_name=name)        # converted already: alphas are folded in
        else:
            holder.load_lora_weights(path, adapter_name=name)      # the file itself: its metadata counts
    names = [n for _, n, _ in loras]
    if len(loras) == 1:
        model.fuse_lora(lora_scale=loras[0][2], adapter_names=names)
    else:
        model.set_adapters(names, weights=[s for _, _, s in loras])
        model.fuse_lora(lora_scale=1.0, adapter_names=names)
    model.unload_lora()
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        out = model(hidden_states=io["img"], encoder_hidden_states=io["txt"], pooled_projections=io["y"],
                    timestep=io["timesteps"], img_ids=io["img_ids"], txt_ids=io["txt_ids"], guidance=io["guidance"],
                    return_dict=False)[0]
    return sd, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="the flux_dev_diffusers folder")
    ap.add_argument("--io", required=True, help="flux_dev_io.safetensors")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    patch_kohya_dims()
    print(json.dumps({"generator": "scripts/reference/flux_lora_reference.py", "torch": torch.__version__,
                      "diffusers": diffusers.__version__, "peft": peft.__version__, "device": "cpu float32"}))
    gen = torch.Generator().manual_seed(2024)
    files = {k: os.path.join(args.out, f"lora_{k}.safetensors") for k in ("peft", "rslora", "alphas", "kohya", "comfy", "xlabs")}
    peft_file(files["peft"], args.base, gen, rslora=False)
    peft_file(files["rslora"], args.base, gen, rslora=True)
    alphas_file(files["alphas"], gen)
    kohya_file(files["kohya"], gen)
    comfy_file(files["comfy"], gen)
    xlabs_file(files["xlabs"], gen)

    io = load_file(args.io)
    base = dict(FluxTransformer2DModel.from_pretrained(args.base).float().state_dict())
    cases = {"peft": [("peft", 0.8)], "rslora": [("rslora", 1.0)], "alphas": [("alphas", 1.0)], "kohya": [("kohya", 0.7)],
             "comfy": [("comfy", 1.3)], "xlabs": [("xlabs", 1.0)], "peft+kohya": [("peft", 0.8), ("kohya", 0.7)]}
    for case, loras in cases.items():
        sd, out = fused(args.base, [(files[k], k, s) for k, s in loras], io)
        assert sd.keys() == base.keys(), sorted(set(sd) ^ set(base))[:5]
        changed = {k: v for k, v in sd.items() if not torch.equal(v, base[k])}
        # the formula, in float64, against what diffusers fused
        expect = {}
        for k, s in loras:
            with safe_open(files[k], "pt") as f:
                meta = f.metadata()
            for mod, d in expected_deltas(files[k], k, meta).items():
                expect[mod + ".weight"] = expect.get(mod + ".weight", 0) + s * d
        assert set(expect) == set(changed), f"{case}: diffusers changed {sorted(set(changed) ^ set(expect))}"
        worst = max(((changed[k].double() - (base[k].double() + expect[k])).abs().max().item(), k) for k in changed)
        size = max(v.abs().max().item() for v in changed.values())
        print(f"{case}: {len(changed)} tensors changed; max|diffusers fused - (W + s·alpha/r·B·A)| = {worst[0]:.3e} "
              f"at {worst[1]} (max|W| {size:.3f}); |out| = {out.norm():.4f}")
        assert worst[0] < 1e-5 * max(1.0, size), f"{case}: diffusers disagrees with the formula"
        changed["out"] = out.contiguous()
        save_file({k: v.contiguous() for k, v in changed.items()},
                  os.path.join(args.out, f"fused_{case.replace('+', '_')}.safetensors"),
                  metadata={"generator": "scripts/reference/flux_lora_reference.py",
                            "loras": json.dumps(loras), "diffusers": diffusers.__version__, "peft": peft.__version__})
    print("done")


if __name__ == "__main__":
    sys.exit(main())
