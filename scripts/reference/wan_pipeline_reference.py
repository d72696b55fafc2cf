"""Reference check of dit4j's Wan2.1 text-to-video pipeline against diffusers' WanPipeline.

Usage (CPU is enough for the tiny model):
    java -cp engine/target/test-classes:cli/target/dit4j.jar org.dit4j.engine.wan.TinyWan OUT
    java -jar cli/target/dit4j.jar generate --model OUT/tiny-wan --prompt "a red fox in the snow" \
        --width 48 --height 32 --frames 9 --steps 4 --seed 7 --out OUT/fox.mp4 --frames-dir OUT/fox-frames
    PYTHONPATH=<diffusers>/src python scripts/reference/wan_pipeline_reference.py OUT/tiny-wan OUT/fox-frames \
        --prompt "a red fox in the snow" --width 48 --height 32 --frames 9 --steps 4 --seed 7

Runs diffusers' WanPipeline in float32 with a CPU torch.Generator(seed), Wan's default negative prompt (dit4j's default;
diffusers' own default is ""), output_type "np", rounds the frames to 8 bits as PIL output does, and prints the PSNR
of every frame and of the whole clip against dit4j's PNG frames. Exit status 1 when the clip PSNR is below --min-psnr.

Recorded (CPU, torch 2.13, diffusers 0.40.0.dev0, TinyWan seed 21, dit4j F32 on the CPU backend):
    48x32, 9 frames, 4 steps, guidance 5, seed 7, "a red fox in the snow": all 9 frames bit-identical (PSNR inf)
    64x48, 13 frames, 10 steps, guidance 6, seed 3, "portrait of a woman in the city at night": clip PSNR 91.93 dB,
        max |diff| 1 (one 8-bit rounding step), pixel std 24.0
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
from PIL import Image

from diffusers import WanPipeline

WAN_NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，"
                "残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，"
                "背景人很多，倒着走")


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("frames_dir")
    p.add_argument("--prompt", required=True)
    p.add_argument("--negative-prompt", default=WAN_NEGATIVE)
    p.add_argument("--width", type=int, default=48)
    p.add_argument("--height", type=int, default=32)
    p.add_argument("--frames", type=int, default=9)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--min-psnr", type=float, default=35.0)
    a = p.parse_args()

    torch.set_num_threads(max(1, os.cpu_count() // 2))
    pipe = WanPipeline.from_pretrained(a.folder, torch_dtype=torch.float32)
    out = pipe(prompt=a.prompt, negative_prompt=a.negative_prompt, height=a.height, width=a.width, num_frames=a.frames,
               num_inference_steps=a.steps, guidance_scale=a.guidance, generator=torch.Generator("cpu").manual_seed(a.seed),
               output_type="np")
    video = out.frames[0]                                            # [T, H, W, 3] float in [0, 1]
    ref = np.round(np.clip(video, 0, 1) * 255).astype(np.uint8)      # as PIL output (round half to even)
    names = sorted(f for f in os.listdir(a.frames_dir) if f.startswith("frame_") and f.endswith(".png"))
    if len(names) != ref.shape[0]:
        print(f"frame count: dit4j {len(names)}, diffusers {ref.shape[0]}")
        sys.exit(1)
    ours = np.stack([np.asarray(Image.open(os.path.join(a.frames_dir, n)).convert("RGB")) for n in names])
    for i in range(ref.shape[0]):
        print(f"frame {i}: PSNR {psnr(ours[i], ref[i]):.2f} dB, max |diff| {int(np.abs(ours[i].astype(int) - ref[i]).max())}")
    total = psnr(ours, ref)
    print(f"clip: {ref.shape[0]} frames {ref.shape[2]}x{ref.shape[1]}, PSNR {total:.2f} dB (min {a.min_psnr} dB), "
          f"pixel std {ref.std():.1f}")
    sys.exit(0 if total >= a.min_psnr else 1)


if __name__ == "__main__":
    main()
