#!/usr/bin/env python3
"""Compares the pixels of two 8-bit PNGs (RGB or RGBA, not interlaced) with the standard library only.

    python3 bench/png_compare.py A.png B.png [--max-abs N] [--mean-abs X]

Prints one JSON line: identical, max_abs, mean_abs, differing (channel values), and ok (identical, or max_abs <= N and
mean_abs <= X when those are given). Exit status 0 when ok, 1 when not, 2 when a file cannot be read.
"""
import json
import struct
import sys
import zlib


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + n
    w, h, depth, color, _, _, interlace = ihdr
    if depth != 8 or color not in (2, 6) or interlace:
        raise ValueError(f"{path}: only 8-bit RGB/RGBA non-interlaced PNGs are supported (depth {depth}, color {color})")
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    out = bytearray(h * stride)
    prev = bytearray(stride)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ft == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif ft == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif ft == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif ft == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        elif ft != 0:
            raise ValueError(f"{path}: bad filter type {ft} in row {y}")
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return w, h, bpp, bytes(out)


def main(argv):
    args = [a for a in argv[1:]]
    max_abs = mean_abs = None
    if "--max-abs" in args:
        i = args.index("--max-abs"); max_abs = float(args[i + 1]); del args[i:i + 2]
    if "--mean-abs" in args:
        i = args.index("--mean-abs"); mean_abs = float(args[i + 1]); del args[i:i + 2]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        a, b = read_png(args[0]), read_png(args[1])
    except (OSError, ValueError, TypeError, zlib.error) as e:
        print(json.dumps({"a": args[0], "b": args[1], "error": str(e), "ok": False}))
        return 2
    if a[:3] != b[:3]:
        print(json.dumps({"a": args[0], "b": args[1], "error": f"sizes differ: {a[:3]} vs {b[:3]}", "ok": False}))
        return 1
    pa, pb = a[3], b[3]
    identical = pa == pb
    mx, total, differing = 0, 0, 0
    if not identical:
        for x, y in zip(pa, pb):
            d = x - y if x > y else y - x
            if d:
                differing += 1
                total += d
                if d > mx:
                    mx = d
    mean = total / len(pa)
    ok = identical or (max_abs is not None and mx <= max_abs and (mean_abs is None or mean <= mean_abs))
    print(json.dumps({"a": args[0], "b": args[1], "size": f"{a[0]}x{a[1]}", "identical": identical, "max_abs": mx,
                      "mean_abs": round(mean, 6), "differing": differing, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
