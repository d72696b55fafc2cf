#!/usr/bin/env python3
"""Draws bench/plots/mgpu-speedup.svg (speedup over one GPU vs GPU count, against issue 6's targets) from the
FluxParallelBench JSON files and the pipeline table of one mgpu-pipeline-device.sh run. Standard library only.
    python3 bench/plot_mgpu_speedup.py bench/mgpu-results/h200x2-session3-2026-11-26 bench/plots/mgpu-speedup.svg
"""
import json, os, re, sys

src, out = sys.argv[1], sys.argv[2]
series = {}   # label -> [(gpus, speedup)]

def add(label, gpus, s):
    series.setdefault(label, [(1, 1.0)]).append((gpus, s))

for res in (1024, 2048):
    f = os.path.join(src, f"bench-{res}.json")
    if not os.path.exists(f):
        continue
    rows = json.load(open(f))
    rows = rows.get("results", rows) if isinstance(rows, dict) else rows
    base = next(r for r in rows if r["config"] == "1 GPU")["graph_ms"]
    best = {}
    for r in rows:
        m = re.match(r"dp(\d+)×cfg(\d+)×ring(\d+)×ulysses(\d+)", r["config"])
        if not m or r.get("graph_ms") is None:
            continue
        d = [int(x) for x in m.groups()]
        n = d[0] * d[1] * d[2] * d[3]
        kind = "Ulysses" if d[3] > 1 and d[2] == 1 else "Ring" if d[2] > 1 and d[3] == 1 else "USP"
        key = (kind, n)
        best[key] = max(best.get(key, 0), base / r["graph_ms"])
    for (kind, n), s in sorted(best.items()):
        add(f"forward {res}² {kind} (best overlap setting)", n, s)

table = os.path.join(src, "results.md")
if os.path.exists(table):
    rows = {}
    for line in open(table):
        p = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(p) >= 2 and re.match(r"\d+ ", p[0]):
            try:
                rows[p[0]] = float(p[1])
            except ValueError:
                pass
    for res in (1024, 2048):
        one = rows.get(f"{res} 1 GPU")
        for kind, lab in (("ulysses 2", "Ulysses"), ("ring 2", "Ring")):
            if one and f"{res} {kind}" in rows:
                add(f"pipeline {res}² 28 steps {lab}", 2, one / rows[f"{res} {kind}"])
    one = rows.get("1024 1 GPU true CFG")
    if one and "1024 cfg-parallel 2 true CFG" in rows:
        add("pipeline 1024² true CFG, CFG parallel", 2, one / rows["1024 cfg-parallel 2 true CFG"])

W, H, L, R, T, B = 860, 440, 60, 410, 40, 370
xmax, ymax = 4, 4
X = lambda g: L + (g - 1) / (xmax - 1) * (R - L)
Y = lambda s: B - s / ymax * (B - T)
colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"]
o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
     f'<rect width="{W}" height="{H}" fill="white"/>',
     f'<text x="{L}" y="22" font-size="14">Flux.1-dev, speedup over one GPU ({os.path.basename(src.rstrip("/"))}; no 4-GPU kind lent)</text>']
for g in range(1, xmax + 1):
    o.append(f'<line x1="{X(g):.1f}" y1="{B}" x2="{X(g):.1f}" y2="{T}" stroke="#eee"/><text x="{X(g):.1f}" y="{B + 18}" text-anchor="middle">{g}</text>')
for s in range(0, ymax + 1):
    o.append(f'<line x1="{L}" y1="{Y(s):.1f}" x2="{X(xmax):.1f}" y2="{Y(s):.1f}" stroke="#eee"/><text x="{L - 8}" y="{Y(s) + 4:.1f}" text-anchor="end">{s}×</text>')
o.append(f'<text x="{(L + X(xmax)) / 2:.1f}" y="{B + 36}" text-anchor="middle">GPUs</text>')
o.append(f'<polyline points="{X(1):.1f},{Y(1):.1f} {X(2):.1f},{Y(1.85):.1f} {X(4):.1f},{Y(3.4):.1f}" fill="none" stroke="black" stroke-dasharray="5,4"/>')
o.append(f'<text x="{X(4) - 4:.1f}" y="{Y(3.4) - 8:.1f}" text-anchor="end">issue 6 targets (1.85× @ 2, 3.4× @ 4, 1024²)</text>')
o.append(f'<polyline points="{X(1):.1f},{Y(1):.1f} {X(4):.1f},{Y(4):.1f}" fill="none" stroke="#bbb" stroke-dasharray="2,3"/>')
ly = T + 4
for i, (label, pts) in enumerate(series.items()):
    c = colors[i % len(colors)]
    pts = sorted(set(pts))
    o.append('<polyline points="' + " ".join(f"{X(g):.1f},{Y(s):.1f}" for g, s in pts) + f'" fill="none" stroke="{c}" stroke-width="2"/>')
    for g, s in pts:
        o.append(f'<circle cx="{X(g):.1f}" cy="{Y(s):.1f}" r="3.5" fill="{c}"/>')
    g, s = pts[-1]
    o.append(f'<rect x="{X(xmax) + 14}" y="{ly - 9}" width="10" height="10" fill="{c}"/><text x="{X(xmax) + 28}" y="{ly}">{label}: {s:.2f}×</text>')
    ly += 18
o.append("</svg>")
open(out, "w").write("\n".join(o) + "\n")
print(f"wrote {out}: {len(series)} series")
for k, v in series.items():
    print(f"  {k}: " + ", ".join(f"{g} GPU {s:.2f}×" for g, s in v))
