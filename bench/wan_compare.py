#!/usr/bin/env python3
"""Side-by-side table of `dit4j bench --model wan-* --json` results and `bench/wan_torch_baseline.py --json` results
from the same device run. Arguments: JSON files of either kind (dit4j: a list of results; torch: {"device", "runs"}).

  python3 bench/wan_compare.py dit4j-wan-1.3b.json dit4j-wan-14b.json torch-wan-1.3b.json torch-wan-14b.json
"""
import json
import sys

TARGETS = {"wan-1.3b": 420.0, "wan-14b": 1800.0}   # issue #9: per-forward targets on H100, ms


def main(paths):
    dit4j, torch, device = {}, {}, None
    for p in paths:
        with open(p) as fh:
            data = json.load(fh)
        if isinstance(data, dict):
            device = device or f"{data['device']}, torch {data['torch']}"
            for r in data["runs"]:
                torch[(r["model"], r["size"])] = r
        else:
            for r in data:
                dit4j[(r["model"], r["size"])] = r
    if device:
        print(f"card: {device}")
    print("| model | video (w×h×frames) | tokens | TFLOP | dit4j CUDA graph ms | dit4j eager ms | dit4j TFLOP/s | dit4j peak GB "
          "| diffusers eager ms | diffusers peak GB | speed-up vs diffusers | target ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(set(dit4j) | set(torch)):
        d, t = dit4j.get(key), torch.get(key)
        best = (d["graph_ms"] or d["eager_ms"]) if d else None
        f = lambda v, fmt="{:.1f}": "–" if v is None else fmt.format(v)
        tokens = (d or t).get("video_tokens")
        print(f"| {key[0]} | {key[1]} | {tokens}+{(d or t).get('text_tokens')} | {f((d or t).get('tflop'))} | {f(d and d['graph_ms'])} "
              f"| {f(d and d['eager_ms'])} | {f(d and d['tflops'], '{:.0f}')} | {f(d and d['peak_gb'])} | {f(t and t['ms'])} "
              f"| {f(t and t.get('peak_gb'))} | {f(t['ms'] / best if t and best else None, '{:.2f}×')} "
              f"| {f(TARGETS.get(key[0]), '{:.0f}')} |")


if __name__ == "__main__":
    main(sys.argv[1:])
