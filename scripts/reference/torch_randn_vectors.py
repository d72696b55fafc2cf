#!/usr/bin/env python3
"""Reference vectors for org.dit4j.core.random.TorchGenerator (PyTorch CPU random numbers).

Runs on a machine with PyTorch (no Java needed) and writes, under OUT_DIR:

  OUT_DIR/rng/manifest.json      what was drawn, digests, where the stored values are
  OUT_DIR/rng/<kernel>.f32       the stored float32 values (little-endian), concatenated
  OUT_DIR/debug/*.f32            (optional, --debug) complete outputs of a few big draws, for diagnosis only

Every case starts from a fresh CPU generator seeded with `seed` and performs a list of calls
(torch.randn / torch.rand, dtype float32) in order; each call's result is recorded separately, so
cases with several calls check that the stream continues exactly as torch continues it.

PyTorch picks its CPU normal kernel by CPU capability (ATEN_CPU_CAPABILITY): on x86 with AVX2 the
AVX2 kernel (also used on AVX-512 machines: normal_stub has no AVX-512 variant), otherwise the
portable scalar kernel. The script re-runs itself once per capability and stores:
  kernel "avx2"   : the capability torch picks natively on this machine (AVX2 or AVX-512)
  kernel "scalar" : ATEN_CPU_CAPABILITY=default (the portable kernel, a smaller set)
and, for "avx2" and "avx512" forced explicitly, only whether the digests equal the native ones.

Large results are not stored whole: only elements i with i < 2048, i >= numel - 2048 or i % 97 == 0
(all elements when numel <= 8192), plus digests of the whole tensor: SHA-256 of the raw
little-endian float32 bytes, and the float64 sum and sum of squares.

Usage:  python3 torch_randn_vectors.py OUT_DIR [--debug]
"""
import hashlib
import json
import os
import platform
import subprocess
import sys

import numpy as np
import torch

HEAD = 2048
TAIL = 2048
STRIDE = 97
STORE_ALL_UP_TO = 8192

SEEDS = [0, 42, 2**32 + 5, 123456789012]
SHAPES = [[1, 16, 128, 128], [2, 16, 64, 64], [7], [1, 16, 17, 80, 80], [15], [16], [17], [33], [1, 4, 5, 3]]


def single_cases():
    cases = []
    for seed in SEEDS:
        for shape in SHAPES:
            cases.append({"name": f"randn_s{seed}_{'x'.join(map(str, shape))}", "seed": seed,
                          "calls": [["randn", shape]]})
    return cases


def extra_cases():
    return [
        # 2**32+5 must equal 5: mt19937 is seeded with the low 32 bits of the 64-bit seed.
        {"name": "randn_s5_17", "seed": 5, "calls": [["randn", [17]]]},
        # largest seed (-1 as int64); low 32 bits all ones
        {"name": "randn_s18446744073709551615_1x4x5x3", "seed": 2**64 - 1, "calls": [["randn", [1, 4, 5, 3]]]},
        {"name": "randn_s1_1", "seed": 1, "calls": [["randn", [1]]]},
        {"name": "randn_s1_0", "seed": 1, "calls": [["randn", [0]], ["randn", [3]]]},
        # numel < 16 uses the double Box-Muller with a cached second sample; the cache survives
        # calls, and the numel >= 16 kernel neither reads nor clears it.
        {"name": "seq_small_cache", "seed": 42,
         "calls": [["randn", [7]], ["randn", [6]], ["randn", [33]], ["randn", [2]], ["randn", [1]], ["randn", [16]],
                   ["randn", [5]]]},
        {"name": "seq_big_then_small", "seed": 0,
         "calls": [["randn", [2, 16, 64, 64]], ["randn", [16]], ["randn", [17]], ["randn", [1, 4, 5, 3]],
                   ["randn", [3]]]},
        {"name": "seq_rand_randn", "seed": 123456789012,
         "calls": [["rand", [1000]], ["randn", [9]], ["rand", [5]], ["randn", [1]], ["randn", [40]], ["rand", [3, 7]]]},
        {"name": "rand_s0_1x16x128x128", "seed": 0, "calls": [["rand", [1, 16, 128, 128]]]},
        {"name": "rand_s42_17", "seed": 42, "calls": [["rand", [17]]]},
        # tail handling: numel % 16 in {1, 15} on bigger sizes; 624-word block boundary of mt19937
        {"name": "randn_s42_1249", "seed": 42, "calls": [["randn", [1249]]]},
        {"name": "randn_s42_623", "seed": 42, "calls": [["randn", [623]]]},
        {"name": "randn_s7_1x4096x64", "seed": 7, "calls": [["randn", [1, 4096, 64]]]},
    ]


SCALAR_SEEDS = [0, 42]
SCALAR_SHAPES = [[16], [17], [33], [1, 4, 5, 3], [2, 16, 64, 64]]


def scalar_cases():
    cases = []
    for seed in SCALAR_SEEDS:
        for shape in SCALAR_SHAPES:
            cases.append({"name": f"randn_s{seed}_{'x'.join(map(str, shape))}", "seed": seed,
                          "calls": [["randn", shape]]})
    cases.append({"name": "seq_small_cache", "seed": 42,
                  "calls": [["randn", [7]], ["randn", [6]], ["randn", [33]], ["randn", [2]]]})
    return cases


def stored_indices(numel):
    if numel <= STORE_ALL_UP_TO:
        return np.arange(numel, dtype=np.int64)
    i = np.arange(numel, dtype=np.int64)
    return i[(i < HEAD) | (i >= numel - TAIL) | (i % STRIDE == 0)]


def draw(gen, op, shape):
    if op == "randn":
        return torch.randn(shape, generator=gen, dtype=torch.float32)
    if op == "rand":
        return torch.rand(shape, generator=gen, dtype=torch.float32)
    raise ValueError(op)


def run_cases(cases, store, blob, debug_dir, debug_names):
    out = []
    for case in cases:
        gen = torch.Generator(device="cpu")
        gen.manual_seed(case["seed"])
        results = []
        for op, shape in case["calls"]:
            t = draw(gen, op, shape).contiguous()
            a = t.numpy().reshape(-1).astype("<f4")
            a64 = a.astype(np.float64)
            r = {"op": op, "shape": shape, "numel": int(a.size),
                 "sha256": hashlib.sha256(a.tobytes()).hexdigest(),
                 "sum": float(a64.sum()), "sumsq": float((a64 * a64).sum()),
                 "absmax": float(np.abs(a64).max()) if a.size else 0.0}
            if store:
                idx = stored_indices(a.size)
                r["stored"] = "all" if idx.size == a.size else f"head{HEAD}_tail{TAIL}_every{STRIDE}"
                r["offset"] = len(blob) // 4
                r["count"] = int(idx.size)
                blob.extend(a[idx].tobytes())
            if debug_dir is not None and (case["name"], len(results)) in debug_names:
                a.tofile(os.path.join(debug_dir, f"{case['name']}_{len(results)}.f32"))
            results.append(r)
        out.append({"name": case["name"], "seed": case["seed"], "results": results})
    return out


def env_info():
    info = {"torch_version": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"),
            "python": platform.python_version(), "machine": platform.machine()}
    try:
        cfg = torch.__config__.show()
        info["build"] = [line.strip() for line in cfg.splitlines()
                         if "compiler" in line.lower() or "CPU capability" in line or "CXX_FLAGS" in line][:6]
    except Exception as e:  # informational only
        info["build"] = [f"unavailable: {e}"]
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def child(kind, out_dir, debug):
    """Runs in a subprocess with ATEN_CPU_CAPABILITY already set; prints one JSON document."""
    debug_dir = os.path.join(out_dir, "debug") if debug else None
    if debug_dir:
        os.makedirs(debug_dir, exist_ok=True)
    blob = bytearray()
    if kind == "avx2":
        cases = single_cases() + extra_cases()
        dbg = {("randn_s0_1x16x128x128", 0), ("randn_s42_1x16x17x80x80", 0), ("rand_s0_1x16x128x128", 0)}
        store = True
    elif kind == "scalar":
        cases = scalar_cases()
        dbg = {("randn_s0_2x16x64x64", 0)}
        store = True
    else:  # digest-only re-run under a forced capability
        cases = single_cases() + extra_cases()
        dbg = set()
        store = False
    res = run_cases(cases, store, blob, debug_dir if kind in ("avx2", "scalar") else None,
                    {(f"{n}", i) for n, i in dbg})
    if store:
        os.makedirs(os.path.join(out_dir, "rng"), exist_ok=True)
        with open(os.path.join(out_dir, "rng", f"{kind}.f32"), "wb") as f:
            f.write(bytes(blob))
    # torch.manual_seed (global default generator) must give the same numbers as a fresh Generator.
    torch.manual_seed(42)
    g = torch.randn([2, 16, 64, 64], dtype=torch.float32)
    gen = torch.Generator().manual_seed(42)
    same_global = bool(torch.equal(g, torch.randn([2, 16, 64, 64], generator=gen, dtype=torch.float32)))
    json.dump({"env": env_info(), "global_manual_seed_matches_generator": same_global, "cases": res}, sys.stdout)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], len(sys.argv) > 4 and sys.argv[4] == "--debug")
        return
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    debug = "--debug" in sys.argv[2:]
    os.makedirs(os.path.join(out_dir, "rng"), exist_ok=True)

    def run_child(kind, capability):
        env = dict(os.environ)
        env.pop("ATEN_CPU_CAPABILITY", None)
        if capability:
            env["ATEN_CPU_CAPABILITY"] = capability
        args = [sys.executable, os.path.abspath(__file__), "--child", kind, out_dir] + (["--debug"] if debug else [])
        p = subprocess.run(args, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            sys.stderr.write(p.stderr)
            raise SystemExit(f"child {kind} ({capability}) failed with {p.returncode}")
        return json.loads(p.stdout)

    native = run_child("avx2", None)
    scalar = run_child("scalar", "default")
    forced = {}
    for cap in ("avx2", "avx512"):
        try:
            r = run_child("digest", cap)
        except SystemExit as e:
            forced[cap] = {"error": str(e)}
            continue
        mine = {(c["name"], i): x["sha256"] for c in r["cases"] for i, x in enumerate(c["results"])}
        ref = {(c["name"], i): x["sha256"] for c in native["cases"] for i, x in enumerate(c["results"])}
        forced[cap] = {"env": r["env"], "all_equal_to_native": mine == ref,
                       "differing": sorted(f"{n}#{i}" for (n, i) in ref if mine.get((n, i)) != ref[(n, i)])[:50]}

    manifest = {
        "generator": "scripts/reference/torch_randn_vectors.py",
        "note": "torch.Generator(cpu).manual_seed(seed), then the calls in order; float32 results",
        "stored_rule": {"all_if_numel_le": STORE_ALL_UP_TO, "head": HEAD, "tail": TAIL, "every": STRIDE},
        "kernels": {
            "avx2": {"file": "avx2.f32", "env": native["env"],
                     "global_manual_seed_matches_generator": native["global_manual_seed_matches_generator"],
                     "cases": native["cases"]},
            "scalar": {"file": "scalar.f32", "env": scalar["env"],
                       "global_manual_seed_matches_generator": scalar["global_manual_seed_matches_generator"],
                       "cases": scalar["cases"]},
        },
        "forced_capability_checks": forced,
    }
    with open(os.path.join(out_dir, "rng", "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(json.dumps({"native": native["env"], "scalar": scalar["env"], "forced": forced}, indent=1))


if __name__ == "__main__":
    main()
