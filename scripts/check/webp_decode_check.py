#!/usr/bin/env python3
"""Decodes animated WebP files with Pillow (libwebp) and compares every frame with raw RGB frames.

Usage: webp_decode_check.py FILE.webp FRAMES.rgb WIDTH HEIGHT DURATION_MS
FRAMES.rgb holds the expected frames back to back (8-bit RGB, row-major). Prints one JSON line and exits 1 on any
difference (frame count, size, duration, pixels).
"""
import json
import sys

from PIL import Image

path, raw, w, h, dur = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
data = open(raw, "rb").read()
per = w * h * 3
expected = [data[i:i + per] for i in range(0, len(data), per)]
im = Image.open(path)
result = {"file": path, "format": im.format, "frames": getattr(im, "n_frames", 1), "size": list(im.size), "ok": True, "problems": []}
if im.format != "WEBP" or result["frames"] != len(expected) or im.size != (w, h):
    result["ok"] = False
    result["problems"].append("format/frames/size")
for i in range(min(result["frames"], len(expected))):
    im.seek(i)
    got = im.convert("RGB").tobytes()          # loads the frame (Pillow sets its duration then)
    if im.info.get("duration") != dur:
        result["ok"] = False
        result["problems"].append(f"frame {i}: duration {im.info.get('duration')}")
    if got != expected[i]:
        diff = sum(1 for a, b in zip(got, expected[i]) if a != b)
        result["ok"] = False
        result["problems"].append(f"frame {i}: {diff} bytes differ")
print(json.dumps(result))
sys.exit(0 if result["ok"] else 1)
