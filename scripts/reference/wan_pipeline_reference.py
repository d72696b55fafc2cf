#!/usr/bin/env python3
"""Wan2.1 text-to-video check of dit4j against diffusers on a tiny random pipeline (helper `wancheck`, issue #9).

The pipeline is written by dit4j's tests: `java -cp <engine test classes>:dit4j.jar org.dit4j.engine.wan.TinyWan DIR`
makes DIR/tiny-wan (a diffusers WanPipeline folder: UMT5EncoderModel, AutoencoderKLWan, WanTransformer3DModel,
UniPC flow scheduler with shift 3, T5TokenizerFast) that diffusers loads unchanged.

  python3 wan_pipeline_reference.py --tiny DIR --out OUT --java "java <flags>" --jar dit4j.jar \
      [--configs cpu:f32,cuda:f32,cuda:bf16] [--ref-device cpu|cuda] [--cases t2v,t2v-long,no-cfg,batch2]

1. diffusers (float32, on --ref-device; TF32 off on CUDA) computes the reference:
   - per component: umT5 states of the prompts and Wan's negative prompt through WanPipeline._get_t5_prompt_embeds
     (512 tokens, trimmed and zero-padded, as the transformer reads them) with the token ids and mask;
     AutoencoderKLWan.decode of a fixed normalised latent (denormalised with latents_mean/std as WanPipeline does);
     AutoencoderKLWan.encode(video).latent_dist.mean of a fixed video in [-1, 1];
   - per pipeline case: WanPipeline(...) with a CPU torch.Generator(seed) (the noise dit4j's TorchGenerator redraws),
     output_type "np", rounded to 8 bits as PIL output does.
   The fixed inputs go to OUT/ref/inputs.safetensors, the outputs to OUT/ref/components.safetensors and OUT/ref/<case>.npy
   (uint8 [videos, T, H, W, 3]; also as float32 in OUT/ref/frames.safetensors, one tensor per case).
2. dit4j, per --configs entry BACKEND:DTYPE: `dit4j generate ... --frames-dir` per case, and
   org.dit4j.engine.bench.WanComponentCheck (umT5, VAE decode, VAE encode on the same inputs).
3. Comparison: token ids must be equal; rel-L2 = ||dit4j - ref|| / ||ref|| per component (VAE decode compared after
   the [-1, 1] clamp both sides apply before 8-bit conversion) against 1e-4 (f32) / 2e-2 (bf16; where diffusers' own
   bf16 run of a component is farther than that from its float32 output, as the tiny VAE's decode is, 1.5 × diffusers'
   bf16 distance, printed beside it; OUT/ref/components-bf16.safetensors); PSNR of every frame
   and of every clip (8-bit RGB) against --min-psnr (35 dB). Table on stdout, OUT/results.json, exit status 1 on a fail.

`--full DIR` checks umT5 and the VAE at full size instead, on RandomWanFiles' random files in DIR (parts t5 and
vae-diffusers, DIR/tokenizers/umt5-xxl/tokenizer.json): umT5 through transformers' UMT5EncoderModel (configuration read
from the tensor shapes), states masked to the prompt as WanPipeline trims and pads them; VAE decode of a [1, 16, --latent]
latent and encode of the matching video; no pipeline cases.
`--skip-dit4j` only writes the reference; `--ref-only-from DIR` reuses a reference written before.
Needs torch, diffusers (source on PYTHONPATH), transformers, safetensors, numpy, Pillow; no network.
"""
import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image

WAN_NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，"
                "残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，"
                "背景人很多，倒着走")

# name: prompt, width, height, frames, steps, guidance, seed, videos per prompt
CASES = {
    "t2v": ("a red fox in the snow", 48, 32, 9, 4, 5.0, 7, 1),
    "t2v-long": ("portrait of a woman in the city at night", 64, 48, 13, 10, 6.0, 3, 1),
    "no-cfg": ("a lighthouse on a cliff at dawn, oil painting", 48, 48, 5, 3, 1.0, 5, 1),
    "batch2": ("two cats playing chess", 32, 32, 5, 3, 5.0, 9, 2),
}
COMPONENT_PROMPTS = ["a red fox in the snow", "portrait of a woman in the city at night", WAN_NEGATIVE]
LATENT_SHAPE = (1, 16, 3, 6, 8)      # normalised latent → video 9 × 48 × 64
VIDEO_SHAPE = (1, 3, 9, 48, 64)      # video in [-1, 1] → latent 3 × 6 × 8
LIMITS = {"f32": 1e-4, "bf16": 2e-2}
BF16_SLACK = 1.5     # bf16 components: limit max(2e-2, 1.5 × diffusers' own bf16 rel-L2 to its float32 output)


def psnr(a, b):
    d = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(d * d))
    return (float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)), int(np.abs(d).max())


def rel_l2(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = float(np.linalg.norm(b))
    return float(np.linalg.norm(a - b)) / (n if n > 0 else 1.0)


def components(pipe, latent, video, device, dtype):
    """umT5 states (WanPipeline's trim + zero pad), VAE decode of the normalised latent, VAE encode (posterior mean), float32 on the host."""
    with torch.no_grad():
        states = pipe._get_t5_prompt_embeds(prompt=COMPONENT_PROMPTS, max_sequence_length=512, device=device, dtype=torch.float32)
        cfg = pipe.vae.config
        mean = torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1)
        inv_std = 1.0 / torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1)
        decoded = pipe.vae.decode((latent / inv_std + mean).to(device=device, dtype=dtype), return_dict=False)[0]
        encoded = pipe.vae.encode(video.to(device=device, dtype=dtype)).latent_dist.mean
    return {"text.states": states.float().cpu().contiguous(), "vae.decoded": decoded.float().cpu().contiguous(),
            "vae.encoded": encoded.float().cpu().contiguous()}


def reference(tiny, ref_dir, device, cases):
    """diffusers' outputs for the components and the pipeline cases, written under ref_dir."""
    from diffusers import WanPipeline
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean
    from safetensors.torch import save_file

    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    os.makedirs(ref_dir, exist_ok=True)
    t0 = time.time()
    g = torch.Generator("cpu").manual_seed(11)
    latent = torch.randn(LATENT_SHAPE, generator=g, dtype=torch.float32)
    video = torch.rand(VIDEO_SHAPE, generator=g, dtype=torch.float32) * 2 - 1
    meta = {f"prompt.{i}": p for i, p in enumerate(COMPONENT_PROMPTS)}
    save_file({"vae.latent": latent.contiguous(), "vae.video": video.contiguous()}, os.path.join(ref_dir, "inputs.safetensors"),
              metadata=meta)
    # diffusers' own bf16 run of the components (loaded with torch_dtype=bfloat16, as users run it): its distance to the
    # float32 reference is the yardstick for dit4j's bf16 error where 2e-2 is below what bf16 itself gives
    pipe = WanPipeline.from_pretrained(os.path.join(tiny, "tiny-wan"), torch_dtype=torch.bfloat16).to(device)
    save_file(components(pipe, latent, video, device, torch.bfloat16), os.path.join(ref_dir, "components-bf16.safetensors"))
    pipe = WanPipeline.from_pretrained(os.path.join(tiny, "tiny-wan"), torch_dtype=torch.float32).to(device)
    pipe.set_progress_bar_config(disable=True)
    comps = components(pipe, latent, video, device, torch.float32)
    with torch.no_grad():
        tok = pipe.tokenizer([prompt_clean(p) for p in COMPONENT_PROMPTS], padding="max_length", max_length=512, truncation=True,
                             add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    comps["text.ids"] = tok.input_ids.float().contiguous()
    comps["text.mask"] = tok.attention_mask.float().contiguous()
    save_file(comps, os.path.join(ref_dir, "components.safetensors"), metadata=meta)
    print(f"reference components ({device}): {time.time() - t0:.1f} s", flush=True)
    frame_tensors = {}
    for name in cases:
        prompt, w, h, frames, steps, guidance, seed, n = CASES[name]
        t0 = time.time()
        out = pipe(prompt=prompt, negative_prompt=WAN_NEGATIVE, height=h, width=w, num_frames=frames, num_inference_steps=steps,
                   guidance_scale=guidance, num_videos_per_prompt=n, generator=torch.Generator("cpu").manual_seed(seed),
                   output_type="np")
        vids = np.stack([np.asarray(v) for v in out.frames])             # [n, T, H, W, 3] float in [0, 1]
        ref = np.round(np.clip(vids, 0, 1) * 255).astype(np.uint8)       # as PIL output (round half to even)
        np.save(os.path.join(ref_dir, name + ".npy"), ref)
        frame_tensors[name] = torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float32))
        print(f"reference {name}: {ref.shape}, {time.time() - t0:.1f} s, pixel std {ref.std():.1f}", flush=True)
    save_file(frame_tensors, os.path.join(ref_dir, "frames.safetensors"))     # the same 8-bit frames as float32, for Java readers
    del pipe


def reference_full(full, ref_dir, device, latent_frames, latent_h, latent_w):
    """Full-size components from RandomWanFiles' files: umT5-XXL (HF names, config read from the shapes) through
    transformers' UMT5EncoderModel, the VAE through diffusers' AutoencoderKLWan (common/vae-diffusers); float32 and bf16."""
    import gc
    from diffusers import AutoencoderKLWan
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    os.makedirs(ref_dir, exist_ok=True)
    t0 = time.time()
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(full, "tokenizers", "umt5-xxl", "tokenizer.json"),
                                  pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    enc = tok([prompt_clean(p) for p in COMPONENT_PROMPTS], padding="max_length", max_length=512, truncation=True,
              add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    g = torch.Generator("cpu").manual_seed(11)
    latent = torch.randn((1, 16, latent_frames, latent_h, latent_w), generator=g, dtype=torch.float32)
    frames = 1 + 4 * (latent_frames - 1)
    video = torch.rand((1, 3, frames, latent_h * 8, latent_w * 8), generator=g, dtype=torch.float32) * 2 - 1
    meta = {f"prompt.{i}": p for i, p in enumerate(COMPONENT_PROMPTS)}
    save_file({"vae.latent": latent.contiguous(), "vae.video": video.contiguous()}, os.path.join(ref_dir, "inputs.safetensors"),
              metadata=meta)
    outs = {torch.float32: {}, torch.bfloat16: {}}

    t5file = os.path.join(full, "common", "umt5-xxl-random.safetensors")
    with safe_open(t5file, framework="pt") as f:
        names = list(f.keys())
        vocab, d_model = f.get_slice("shared.weight").get_shape()
        layers = sum(1 for n in names if n.endswith(".layer.0.SelfAttention.q.weight"))
        heads = f.get_slice("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight").get_shape()[1]
        inner = f.get_slice("encoder.block.0.layer.0.SelfAttention.q.weight").get_shape()[0]
        d_ff = f.get_slice("encoder.block.0.layer.1.DenseReluDense.wi_0.weight").get_shape()[0]
        cfg = UMT5Config(vocab_size=vocab, d_model=d_model, d_kv=inner // heads, d_ff=d_ff, num_layers=layers, num_heads=heads,
                         relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                         dense_act_fn="gelu_new", is_gated_act=True, layer_norm_epsilon=1e-6, dropout_rate=0.0,
                         tie_word_embeddings=False, is_encoder_decoder=False, use_cache=False)
        for dt in (torch.float32, torch.bfloat16):
            with torch.device("meta"):
                model = UMT5EncoderModel(cfg)
            sd = {n: f.get_tensor(n).to(device=device, dtype=dt) for n in names}
            sd["encoder.embed_tokens.weight"] = sd["shared.weight"]
            missing, unexpected = model.load_state_dict(sd, strict=False, assign=True)
            if missing or unexpected:
                raise RuntimeError(f"umT5 state dict: missing {missing}, unexpected {unexpected}")
            model.eval()
            with torch.no_grad():
                h = model(enc.input_ids.to(device), enc.attention_mask.to(device)).last_hidden_state.float()
                h = h * enc.attention_mask.to(device).unsqueeze(-1).float()     # WanPipeline's trim + zero pad
            outs[dt]["text.states"] = h.cpu().contiguous()
            del model, sd, h
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
    print(f"reference umT5 ({d_model} wide, {layers} layers, {heads} heads; {device}, f32 + bf16): {time.time() - t0:.1f} s", flush=True)

    t0 = time.time()
    for dt in (torch.float32, torch.bfloat16):
        vae = AutoencoderKLWan.from_pretrained(os.path.join(full, "common", "vae-diffusers"), torch_dtype=dt).to(device)
        c = vae.config
        mean = torch.tensor(c.latents_mean).view(1, c.z_dim, 1, 1, 1)
        inv_std = 1.0 / torch.tensor(c.latents_std).view(1, c.z_dim, 1, 1, 1)
        with torch.no_grad():
            outs[dt]["vae.decoded"] = vae.decode((latent / inv_std + mean).to(device=device, dtype=dt),
                                                 return_dict=False)[0].float().cpu().contiguous()
            outs[dt]["vae.encoded"] = vae.encode(video.to(device=device, dtype=dt)).latent_dist.mean.float().cpu().contiguous()
        del vae
        if device == "cuda":
            torch.cuda.empty_cache()
    print(f"reference VAE (latent {tuple(latent.shape)}, video {tuple(video.shape)}; {device}, f32 + bf16): {time.time() - t0:.1f} s",
          flush=True)
    comps = dict(outs[torch.float32])
    comps["text.ids"] = enc.input_ids.float().contiguous()
    comps["text.mask"] = enc.attention_mask.float().contiguous()
    save_file(comps, os.path.join(ref_dir, "components.safetensors"), metadata=meta)
    save_file(outs[torch.bfloat16], os.path.join(ref_dir, "components-bf16.safetensors"))


def run(cmd, log, timeout):
    t = time.time()
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
    with open(log, "a") as f:
        f.write(f"$ {cmd}\n(rc {p.returncode}, {time.time() - t:.1f} s)\n{p.stdout}\n{p.stderr.replace(chr(13), chr(10))}\n")
    if p.returncode != 0:
        last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
        raise RuntimeError(f"rc {p.returncode}: {last}")
    return time.time() - t


def dit4j_case(java, jar, tiny, name, backend, dtype, work, log):
    prompt, w, h, frames, steps, guidance, seed, n = CASES[name]
    d = os.path.join(work, f"{name}-{backend.replace(':', '')}-{dtype}")
    cmd = (f"{java} -jar {shlex.quote(jar)} generate --model {shlex.quote(os.path.join(tiny, 'tiny-wan'))} "
           f"--prompt {shlex.quote(prompt)} --negative-prompt {shlex.quote(WAN_NEGATIVE)} --width {w} --height {h} "
           f"--frames {frames} --steps {steps} --guidance {guidance} --seed {seed} --batch {n} --backend {backend} "
           f"--dtype {dtype} --out {shlex.quote(d + '.mp4')} --frames-dir {shlex.quote(d)}")
    secs = run(cmd, log, 150)
    vids = []
    for v in range(n):
        fd = d if n == 1 else os.path.join(d, f"video-{v + 1}")
        names = sorted(f for f in os.listdir(fd) if f.startswith("frame_") and f.endswith(".png"))
        vids.append(np.stack([np.asarray(Image.open(os.path.join(fd, f)).convert("RGB")) for f in names]))
    return np.stack(vids), secs


def compare(args):
    from safetensors.numpy import load_file
    ref_dir = args.ref_only_from or os.path.join(args.out, "ref")
    ref = load_file(os.path.join(ref_dir, "components.safetensors"))
    p16 = os.path.join(ref_dir, "components-bf16.safetensors")
    ref16 = load_file(p16) if os.path.exists(p16) else None
    log = os.path.join(args.out, "dit4j.log")
    work = os.path.join(args.out, "dit4j")
    os.makedirs(work, exist_ok=True)
    results, ok = [], True
    for conf in args.configs.split(","):
        backend, dtype = conf.split(":")
        limit = LIMITS[dtype]
        row = {"backend": backend, "dtype": dtype, "limit_rel_l2": limit, "min_psnr": args.min_psnr}
        try:
            outp = os.path.join(work, f"components-{backend.replace(':', '')}-{dtype}.safetensors")
            model = (",".join(os.path.join(args.full, p) for p in ("common/umt5-xxl-random.safetensors", "tokenizers/umt5-xxl",
                                                                   "common/vae-diffusers"))
                     if args.full else os.path.join(args.tiny, "tiny-wan"))
            row["components_s"] = run(f"{args.java} -cp {shlex.quote(args.jar)} org.dit4j.engine.bench.WanComponentCheck "
                                      f"{shlex.quote(model)} "
                                      f"{shlex.quote(os.path.join(ref_dir, 'inputs.safetensors'))} {shlex.quote(outp)} {backend} {dtype}",
                                      log, args.component_timeout)
            ours = load_file(outp)
            row["ids_equal"] = bool(np.array_equal(ours["text.ids"], ref["text.ids"]) and np.array_equal(ours["text.mask"], ref["text.mask"]))
            comp = {
                "umt5": rel_l2(ours["text.states"], ref["text.states"]),
                "vae_decode": rel_l2(np.clip(ours["vae.decoded"], -1, 1), ref["vae.decoded"]),
                "vae_encode": rel_l2(ours["vae.encoded"], ref["vae.encoded"]),
            }
            row["rel_l2"] = comp
            lim = {k: limit for k in comp}
            if dtype == "bf16" and ref16 is not None:
                # where diffusers' own bf16 run is farther from the float32 answer than 2e-2 (the tiny VAE's 2-channel
                # layers), dit4j bf16 may be as far as 1.5 × that
                own = {"umt5": rel_l2(ref16["text.states"], ref["text.states"]),
                       "vae_decode": rel_l2(ref16["vae.decoded"], ref["vae.decoded"]),
                       "vae_encode": rel_l2(ref16["vae.encoded"], ref["vae.encoded"])}
                row["diffusers_bf16_rel_l2"] = own
                lim = {k: max(limit, BF16_SLACK * own[k]) for k in comp}
            row["limits"] = lim
            row["components_pass"] = row["ids_equal"] and all(comp[k] <= lim[k] for k in comp)
        except Exception as e:     # noqa: BLE001 - reported, the other configurations still run
            row["components_error"] = str(e)
            row["components_pass"] = False
        cases = {}
        for name in [c for c in args.cases.split(",") if c]:
            r = np.load(os.path.join(ref_dir, name + ".npy"))
            try:
                v, secs = dit4j_case(args.java, args.jar, args.tiny, name, backend, dtype, work, log)
                if v.shape != r.shape:
                    cases[name] = {"error": f"shape dit4j {v.shape} vs diffusers {r.shape}", "pass": False}
                    continue
                frames = [psnr(v[i, j], r[i, j]) for i in range(r.shape[0]) for j in range(r.shape[1])]
                clip = [psnr(v[i], r[i]) for i in range(r.shape[0])]
                cases[name] = {"clip_psnr": [c[0] for c in clip], "clip_max_diff": [c[1] for c in clip],
                               "min_frame_psnr": min(f[0] for f in frames), "frame_psnr": [f[0] for f in frames],
                               "seconds": secs, "pass": all(c[0] >= args.min_psnr for c in clip)}
            except Exception as e:  # noqa: BLE001
                cases[name] = {"error": str(e), "pass": False}
        row["cases"] = cases
        row["pass"] = row["components_pass"] and all(c["pass"] for c in cases.values())
        ok &= row["pass"]
        results.append(row)
        print_row(row, flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"pass": ok, "configs": results}, f, indent=1, default=lambda x: None if x != x else str(x))
    print("ALL PASS" if ok else "FAIL", flush=True)
    return ok


def fmt_db(x):
    return "inf" if x == float("inf") else f"{x:.2f}"


def print_row(row, flush=True):
    head = f"== dit4j {row['backend']} {row['dtype']} (rel-L2 limit {row['limit_rel_l2']:g}, PSNR >= {row['min_psnr']} dB)"
    print(head, flush=flush)
    if "components_error" in row:
        print(f"  components: ERROR {row['components_error']}")
    else:
        c, lim, own = row["rel_l2"], row["limits"], row.get("diffusers_bf16_rel_l2")
        parts = []
        for k, label in (("umt5", "umT5"), ("vae_decode", "VAE decode"), ("vae_encode", "VAE encode")):
            parts.append(f"{label} {c[k]:.3e}" + (f" (diffusers bf16 {own[k]:.3e}, limit {lim[k]:.3g})" if own else ""))
        print(f"  token ids equal: {row['ids_equal']}; rel-L2 " + ", ".join(parts) + f"  -> {'pass' if row['components_pass'] else 'FAIL'}")
    for name, c in row["cases"].items():
        if "error" in c:
            print(f"  {name}: ERROR {c['error']}")
        else:
            print(f"  {name}: clip PSNR {', '.join(fmt_db(p) for p in c['clip_psnr'])} dB (max |diff| "
                  f"{', '.join(str(m) for m in c['clip_max_diff'])}), min frame {fmt_db(c['min_frame_psnr'])} dB, "
                  f"{c['seconds']:.1f} s -> {'pass' if c['pass'] else 'FAIL'}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", help="folder with tiny-wan/ (TinyWan's main)")
    p.add_argument("--full", help="a RandomWanFiles folder (parts t5, vae-diffusers and the tokenizer): umT5 and VAE components "
                                  "at full size instead of the tiny pipeline (no pipeline cases)")
    p.add_argument("--latent", default="5,32,32", help="--full: latent frames,height,width of the VAE decode/encode check")
    p.add_argument("--component-timeout", type=int, default=150)
    p.add_argument("--out", required=True)
    p.add_argument("--java", default="java --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m")
    p.add_argument("--jar", default="cli/target/dit4j.jar")
    p.add_argument("--configs", default="cpu:f32")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--ref-device", default="cpu")
    p.add_argument("--ref-only-from", help="reuse the reference in this folder instead of computing it")
    p.add_argument("--skip-dit4j", action="store_true")
    p.add_argument("--min-psnr", type=float, default=35.0)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(a.threads or max(1, (os.cpu_count() or 2) // 2))
    if bool(a.tiny) == bool(a.full):
        sys.exit("give --tiny DIR (the tiny pipeline) or --full DIR (full-size components), not both")
    if a.full:
        a.cases = ""
    for c in [c for c in a.cases.split(",") if c]:
        if c not in CASES:
            sys.exit(f"unknown case {c!r}; known: {', '.join(CASES)}")
    if not a.ref_only_from:
        if a.full:
            reference_full(a.full, os.path.join(a.out, "ref"), a.ref_device, *[int(x) for x in a.latent.split(",")])
        else:
            reference(a.tiny, os.path.join(a.out, "ref"), a.ref_device, a.cases.split(","))
    if a.skip_dit4j:
        return
    sys.exit(0 if compare(a) else 1)


if __name__ == "__main__":
    main()
