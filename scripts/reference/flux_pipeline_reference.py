#!/usr/bin/env python3
"""End-to-end Flux pipeline check: diffusers' FluxPipeline / FluxKontextPipeline against `dit4j generate` on the same
tiny random pipelines (written by dit4j's tests: `org.dit4j.engine.flux.TinyFlux DIR` makes DIR/tiny-dev,
DIR/tiny-schnell, DIR/models/... and DIR/reference.png).

  python3 flux_pipeline_reference.py --tiny DIR --dit4j "java ... -jar dit4j.jar" --out OUT

For every case the diffusers image (float32, CPU generator with the seed, as diffusers documents) and the dit4j image
(one run per backend/dtype) are written to OUT/images/ and compared: PSNR over the 8-bit RGB values, max |diff|.
Also checks the Kontext reference resize: dit4j's Lanczos (--save-reference) against Pillow's Image.resize(LANCZOS).
Needs torch, diffusers, transformers, Pillow, numpy; no network (HF_HUB_OFFLINE=1).
"""
import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
import traceback

import numpy as np
import torch
from PIL import Image

CASES = [
    # name, folder, pipeline kwargs, dit4j args
    ("dev", "tiny-dev", dict(prompt="a photo of a cat", width=128, height=96, num_inference_steps=4, guidance_scale=3.5,
                             seed=42, max_sequence_length=32),
     "--prompt 'a photo of a cat' -W 128 -H 96 --steps 4 --guidance 3.5 --seed 42 --t5-length 32"),
    ("dev-cfg", "tiny-dev", dict(prompt="a photo of a cat", negative_prompt="a dog", true_cfg_scale=4.0, width=128, height=96,
                                 num_inference_steps=4, guidance_scale=3.5, seed=42, max_sequence_length=32),
     "--prompt 'a photo of a cat' --negative-prompt 'a dog' --true-cfg 4 -W 128 -H 96 --steps 4 --guidance 3.5 --seed 42 --t5-length 32"),
    ("dev-batch2", "tiny-dev", dict(prompt="a red fox in snow", width=64, height=64, num_inference_steps=3, guidance_scale=3.5,
                                    seed=7, max_sequence_length=16, num_images_per_prompt=2),
     "--prompt 'a red fox in snow' -W 64 -H 64 --steps 3 --guidance 3.5 --seed 7 --t5-length 16 --batch 2"),
    ("schnell", "tiny-schnell", dict(prompt="a red fox in snow", width=96, height=64, num_inference_steps=4, guidance_scale=0.0,
                                     seed=5, max_sequence_length=32),
     "--prompt 'a red fox in snow' -W 96 -H 64 --steps 4 --seed 5 --t5-length 32"),
    ("kontext", "tiny-dev", dict(kontext=True, prompt="make it winter", width=128, height=96, num_inference_steps=3,
                                 guidance_scale=2.5, seed=1, max_sequence_length=16),
     "--prompt 'make it winter' --image {ref} -W 128 -H 96 --steps 3 --guidance 2.5 --seed 1 --t5-length 16"),
]


def psnr(a, b):
    d = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(d * d))
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse), int(np.abs(d).max())


def run_diffusers(tiny, folder, kw, ref_path):
    from diffusers import FluxPipeline, FluxKontextPipeline
    kw = dict(kw)
    seed = kw.pop("seed")
    kontext = kw.pop("kontext", False)
    cls = FluxKontextPipeline if kontext else FluxPipeline
    pipe = cls.from_pretrained(os.path.join(tiny, folder), torch_dtype=torch.float32).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    if kontext:
        kw["image"] = Image.open(ref_path).convert("RGB")
        kw["max_area"] = kw["width"] * kw["height"]     # keep the target size (diffusers rescales it to max_area)
    g = torch.Generator("cpu").manual_seed(seed)
    out = pipe(generator=g, output_type="pil", **kw).images
    return [np.asarray(im.convert("RGB")) for im in out]


def run_dit4j(dit4j, tiny, folder, args, backend, dtype, out_png, log, extra=""):
    cmd = (f"{dit4j} generate --model {shlex.quote(os.path.join(tiny, folder))} {args} --backend {backend} --dtype {dtype} "
           f"-o {shlex.quote(out_png)} {extra}")
    t = time.time()
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=150)
    with open(log, "a") as f:
        f.write(f"$ {cmd}\n(rc {p.returncode}, {time.time() - t:.1f} s)\n{p.stdout}\n{p.stderr.replace(chr(13), chr(10))}\n")
    if p.returncode != 0:
        raise RuntimeError(f"dit4j failed (rc {p.returncode}): {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''}")
    return p.stdout.split()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", required=True)
    ap.add_argument("--dit4j", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", default="cuda:f32,cuda:bf16,cpu:f32")
    a = ap.parse_args()
    img_dir = os.path.join(a.out, "images")
    os.makedirs(img_dir, exist_ok=True)
    log = os.path.join(a.out, "dit4j.log")
    ref_path = os.path.join(a.tiny, "reference.png")
    import diffusers
    import transformers
    results = {"versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
                            "gpu": torch.cuda.get_device_name(0)}, "cases": {}}
    print(json.dumps(results["versions"]))
    for name, folder, kw, dargs in CASES:
        res = results["cases"].setdefault(name, {})
        try:
            t = time.time()
            ref_imgs = run_diffusers(a.tiny, folder, kw, ref_path)
            res["diffusers_s"] = round(time.time() - t, 2)
            for i, im in enumerate(ref_imgs):
                Image.fromarray(im).save(os.path.join(img_dir, f"{name}-diffusers-{i}.png"))
        except Exception as e:
            traceback.print_exc()
            res["diffusers_error"] = repr(e)
            continue
        for run in a.runs.split(","):
            backend, dtype = run.split(":")
            key = f"{backend.replace(':', '')}-{dtype}"
            if backend == "cpu" and name not in ("dev", "kontext"):
                continue
            out_png = os.path.join(img_dir, f"{name}-dit4j-{key}.png")
            extra = ""
            if name == "kontext" and key == "cuda-f32":
                extra = f"--save-reference {shlex.quote(os.path.join(img_dir, 'reference-dit4j.png'))}"
            try:
                files = run_dit4j(a.dit4j, a.tiny, folder, dargs.format(ref=shlex.quote(ref_path)), backend, dtype, out_png, log, extra)
                scores = []
                for i, f in enumerate(files):
                    got = np.asarray(Image.open(f).convert("RGB"))
                    if got.shape != ref_imgs[i].shape:
                        scores.append({"shape": [list(got.shape), list(ref_imgs[i].shape)]})
                        continue
                    p, m = psnr(got, ref_imgs[i])
                    scores.append({"psnr_db": round(p, 2), "max_abs": m})
                res[key] = scores
            except Exception as e:
                res[key] = {"error": repr(e)}
            print(name, key, res[key], flush=True)
    # Pillow Lanczos vs dit4j's resize of the Kontext reference
    try:
        ours = os.path.join(img_dir, "reference-dit4j.png")
        mine = np.asarray(Image.open(ours).convert("RGB"))
        pil = np.asarray(Image.open(ref_path).convert("RGB").resize((mine.shape[1], mine.shape[0]), Image.LANCZOS))
        diff = np.abs(mine.astype(int) - pil.astype(int))
        results["lanczos_vs_pillow"] = {"size": [mine.shape[1], mine.shape[0]], "differing_bytes": int((diff > 0).sum()),
                                        "max_abs": int(diff.max()), "pillow": Image.__version__ if hasattr(Image, "__version__") else "?"}
        os.remove(ours)
    except Exception as e:
        results["lanczos_vs_pillow"] = {"error": repr(e)}
    print(json.dumps(results, indent=1))
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
