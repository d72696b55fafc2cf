#!/usr/bin/env python3
"""Reference sigma schedules for dit4j's server tests (SchedulersTest).

Re-derives, with numpy float32 arithmetic, the schedules ComfyUI computes in comfy/model_sampling.py
(ModelSamplingFlux, ModelSamplingDiscreteFlow) and comfy/samplers.py (simple, normal, sgm_uniform, beta),
evaluating each tensor expression as PyTorch's float32 CPU kernels do (Python scalars rounded to float32,
`scalar / tensor` as reciprocal(tensor) * scalar). beta uses scipy.stats.beta.ppf as ComfyUI does.
Prints Java array literals to paste into SchedulersTest. Needs numpy and scipy (no torch).
"""
import math
import numpy as np
import scipy.stats

f32 = np.float32


def flux_sigma(shift, t):
    e = f32(math.exp(shift))
    a = (f32(1) / t) - f32(1)
    return (f32(1) / (a + e)) * e


def flow_sigma(shift, multiplier, timestep):
    t = timestep / f32(multiplier)
    if shift == 1.0:
        return t
    return (t * f32(shift)) / ((t * f32(shift - 1.0)) + f32(1))


def table(kind, shift, multiplier=1.0):
    n = 10000 if kind == "flux" else 1000
    k = np.arange(1, n + 1).astype(f32)
    t = k / f32(n)
    return flux_sigma(shift, t) if kind == "flux" else flow_sigma(shift, multiplier, t * f32(multiplier))


def sigma_of(kind, shift, multiplier, ts):
    return flux_sigma(shift, ts) if kind == "flux" else flow_sigma(shift, multiplier, ts)


def timestep_of(kind, multiplier, s):
    return s if kind == "flux" else s * f32(multiplier)


def linspace(start, end, steps):
    start, end = f32(start), f32(end)
    if steps == 1:
        return np.array([start], dtype=f32)
    step = (end - start) / f32(steps - 1)
    half = steps // 2
    return np.array([start + step * f32(i) if i < half else end - step * f32(steps - i - 1) for i in range(steps)], dtype=f32)


def simple(tab, steps):
    ss = len(tab) / steps
    return [float(tab[-(1 + int(x * ss))]) for x in range(steps)] + [0.0]


def normal(kind, shift, multiplier, tab, steps, sgm):
    start = timestep_of(kind, multiplier, tab[-1])
    end = timestep_of(kind, multiplier, tab[0])
    append_zero = True
    if sgm:
        ts = linspace(start, end, steps + 1)[:-1]
    else:
        if math.isclose(float(sigma_of(kind, shift, multiplier, end)), 0, abs_tol=0.00001):
            steps += 1
            append_zero = False
        ts = linspace(start, end, steps)
    out = [float(sigma_of(kind, shift, multiplier, t)) for t in ts]
    return out + ([0.0] if append_zero else [])


def beta(tab, steps, a=0.6, b=0.6):
    total = len(tab) - 1
    ts = 1 - np.linspace(0, 1, steps, endpoint=False)
    ts = np.rint(scipy.stats.beta.ppf(ts, a, b) * total)
    out, last = [], -1
    for t in ts:
        if t != last:
            out.append(float(tab[int(t)]))
        last = t
    return out + [0.0]


def java(name, values):
    body = ", ".join(repr(float(np.float32(v))) + "f" for v in values)
    print(f"    static final float[] {name} = {{{body}}};")


def flux_node_shift(max_shift, base_shift, width, height):
    # comfy_extras/nodes_model_advanced.py ModelSamplingFlux.patch
    x1, x2 = 256, 4096
    mm = (max_shift - base_shift) / (x2 - x1)
    b = base_shift - mm * x1
    return (width * height / (8 * 8 * 2 * 2)) * mm + b


cases = [("FLUX_115", "flux", 1.15, 1.0), ("FLUX_512x768", "flux", flux_node_shift(1.15, 0.5, 512, 768), 1.0),
         ("SCHNELL", "flow", 1.0, 1.0), ("SD3_3", "flow", 3.0, 1000.0)]
for name, kind, shift, mult in cases:
    tab = table(kind, shift, mult)
    java(name + "_SIMPLE_20", simple(tab, 20))
    java(name + "_NORMAL_20", normal(kind, shift, mult, tab, 20, False))
    java(name + "_SGM_20", normal(kind, shift, mult, tab, 20, True))
    java(name + "_BETA_20", beta(tab, 20))
    java(name + "_SIMPLE_4", simple(tab, 4))
    java(name + "_BETA_7", beta(tab, 7))
