#!/usr/bin/env python3
"""Side-by-side table of `dit4j bench --json` and `bench/flux_torch_baseline.py --json` results from the same device run."""
import json
import sys

dit4j = {r["resolution"]: r for r in json.load(open(sys.argv[1]))}
torch = json.load(open(sys.argv[2]))
eager = {r["resolution"]: r["ms"] for r in torch["runs"] if r["mode"] == "eager"}
comp = {r["resolution"]: (r["ms"], r.get("compile_s")) for r in torch["runs"] if r["mode"] == "torch.compile"}
print(f"card: {torch['device']}, torch {torch['torch']}")
print("| resolution | dit4j (CUDA graph) ms | diffusers eager ms | torch.compile ms (compile s) | vs eager | vs compile |")
print("|---|---|---|---|---|---|")
for res in sorted(dit4j):
    d = dit4j[res]["graph_ms"] or dit4j[res]["eager_ms"]
    e = eager.get(res)
    c = comp.get(res)
    print(f"| {res}² | {d:.1f} | {e:.1f} | " + (f"{c[0]:.1f} ({c[1]:.0f} s)" if c else "–") + " | "
          + (f"{e / d:.2f}×" if e else "–") + " | " + (f"{c[0] / d:.2f}×" if c else "–") + " |")
