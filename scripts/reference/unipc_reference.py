#!/usr/bin/env python3
"""Reference schedules and trajectories of diffusers' flow-matching UniPC (and Euler) for dit4j's sampler tests.

Writes models/src/test/resources/sampling/flow_unipc.json (or --out DIR/flow_unipc.json) with

  schedules:    UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=s)
                .set_timesteps(N) for several (N, s): "sigmas" (float32 values, N+1 ending in 0) and "timesteps" (int64);
                and the Wan reference repository's FlowUniPCMultistepScheduler schedule for (N, s), recomputed here with
                numpy from its set_timesteps (linspace(float32(0.999), 0, N+1)[:-1], shift, int64(1000·σ)) since that
                repository is not installed: variant "wan_original".
  trajectories: a fixed synthetic model v(x, σ) = x − d + 0.25·sin(3x)·σ + 0.1·cos(x) (d a fixed "data" latent)
                driven through scheduler.step for every step from x = noise; "model_outputs" [N][n] are the values the
                model returned at each step, "samples" [N+1][n] the latents x_0 (start) … x_N (returned by the last step).
                Runs: Wan's configuration in float32 (what diffusers computes), the same in float64 (sigmas turned to
                float64 after set_timesteps, so every coefficient is computed in float64 too), order 3 bh1 with
                disable_corrector in float64, and FlowMatchEulerDiscreteScheduler on the same sigmas in float32.
                diffusers' bh1 returns NaN at the final sigma = 0 (-h = -inf times a zero residual); that sample is
                written as null.

Floats are written with Python's repr (round-trip exact; float32 values are exact in double).

Run: PYTHONPATH=<diffusers>/src python3 unipc_reference.py [--out DIR]
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch

import diffusers
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

SHAPE = (1, 2, 1, 3, 4)   # a tiny video latent [B, C, F, H, W]


def unipc(steps, shift, order=2, solver_type="bh2", lower_order_final=True, disable_corrector=()):
    s = UniPCMultistepScheduler(num_train_timesteps=1000, solver_order=order, prediction_type="flow_prediction",
                                use_flow_sigmas=True, flow_shift=shift, solver_type=solver_type,
                                lower_order_final=lower_order_final, disable_corrector=list(disable_corrector))
    s.set_timesteps(steps)
    return s


def wan_original_schedule(steps, shift):
    sigma_max = float(np.float32(1.0 - 1.0 / 1000))          # float32(1 - alphas[0]) with alphas[0] = 1/1000, .item()
    sig = np.linspace(sigma_max, 0.0, steps + 1).copy()[:-1]
    sig = shift * sig / (1 + (shift - 1) * sig)
    timesteps = torch.from_numpy(sig * 1000).to(dtype=torch.int64)
    return np.concatenate([sig, [0]]).astype(np.float32), timesteps


def model(x, sigma, d):
    return x - d + 0.25 * torch.sin(3 * x) * sigma + 0.1 * torch.cos(x)


def trajectory(name, sched, dtype, noise, data, sigmas_f64=False, **cfg):
    if sigmas_f64:
        sched.sigmas = sched.sigmas.double()
    x = noise.to(dtype)
    d = data.to(dtype)
    outs, samples = [], [x.flatten().tolist()]
    for i, t in enumerate(sched.timesteps):
        sigma = sched.sigmas[i].to(dtype)
        v = model(x, sigma, d)
        outs.append(v.flatten().tolist())
        x = sched.step(v, t, x, return_dict=False)[0]
        assert x.dtype == dtype, (x.dtype, dtype)
        samples.append(x.flatten().tolist())
    final = torch.tensor(samples[-1], dtype=torch.float64)
    nan_end = bool(torch.isnan(final).any())
    if nan_end:
        # bh1 at the final sigma = 0: B(h) = -h = -inf times the zero order-1 residual gives NaN in diffusers; the
        # limit is x0_hat. Written as null (JSON has no NaN); the test checks dit4j's x0_hat there.
        samples[-1] = None
        final = torch.tensor(samples[-2], dtype=torch.float64)
    print(f"{name}: {len(outs)} steps, |x_N - d| / |d| = {(final - data.double().flatten()).norm() / data.norm():.4f}"
          + (" (diffusers returned NaN at the last step; x_N-1 shown)" if nan_end else ""))
    return dict(name=name, precision="f64" if dtype == torch.float64 else "f32", steps=len(outs),
                model_outputs=outs, samples=samples, **cfg)


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "models", "src", "test", "resources", "sampling"))
    args = ap.parse_args()
    src = os.path.dirname(diffusers.__file__)
    digest = hashlib.sha256()
    for f in ("schedulers/scheduling_unipc_multistep.py", "schedulers/scheduling_flow_match_euler_discrete.py"):
        digest.update(open(os.path.join(src, f), "rb").read())
    meta = {"generator": "scripts/reference/unipc_reference.py", "torch": torch.__version__,
            "diffusers": diffusers.__version__, "diffusers_scheduler_sources_sha256": digest.hexdigest(),
            "shape": list(SHAPE), "model": "v = x - d + 0.25*sin(3x)*sigma + 0.1*cos(x)"}
    print(json.dumps(meta))

    schedules = []
    for steps, shift in ((20, 5.0), (50, 5.0), (30, 8.0), (10, 3.0), (4, 1.0), (1, 5.0)):
        s = unipc(steps, shift)
        schedules.append(dict(variant="diffusers", steps=steps, shift=shift,
                              sigmas=[float(v) for v in s.sigmas.tolist()], timesteps=s.timesteps.tolist()))
    for steps, shift in ((20, 5.0), (50, 5.0), (50, 1.0)):
        sig, ts = wan_original_schedule(steps, shift)
        schedules.append(dict(variant="wan_original", steps=steps, shift=shift,
                              sigmas=[float(v) for v in sig.tolist()], timesteps=ts.tolist()))

    gen = torch.Generator().manual_seed(31)
    noise = torch.randn(SHAPE, generator=gen, dtype=torch.float64).float()
    data = torch.randn(SHAPE, generator=gen, dtype=torch.float64).float()
    wan = dict(shift=5.0, order=2, solver_type="bh2", lower_order_final=True, disable_corrector=[])
    runs = [
        trajectory("wan_f32", unipc(20, 5.0), torch.float32, noise, data, **wan),
        trajectory("wan_f64", unipc(20, 5.0), torch.float64, noise, data, sigmas_f64=True, **wan),
    ]
    o3 = dict(shift=3.0, order=3, solver_type="bh1", lower_order_final=True, disable_corrector=[0, 4])
    runs.append(trajectory("order3_bh1_f64", unipc(12, 3.0, 3, "bh1", True, (0, 4)), torch.float64, noise, data,
                           sigmas_f64=True, **o3))
    # Euler on the same sigmas: FlowMatchEulerDiscreteScheduler with shift 1 keeps given sigmas unchanged
    eul = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    eul.set_timesteps(sigmas=unipc(20, 5.0).sigmas[:-1].tolist())
    runs.append(trajectory("euler_f32", eul, torch.float32, noise, data, shift=5.0, order=0, solver_type="euler",
                           lower_order_final=True, disable_corrector=[]))

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(os.path.normpath(args.out), "flow_unipc.json")
    with open(path, "w") as f:
        json.dump(dict(meta=meta, schedules=schedules, trajectories=runs, data=data.flatten().tolist()), f, allow_nan=False)
    print(f"wrote {path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    sys.exit(main())
