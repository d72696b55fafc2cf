#!/usr/bin/env python3
"""Reference numbers for dit4j's KSamplersTest: ComfyUI's `uni_pc` / `uni_pc_bh2` / `euler` samplers re-derived
with PyTorch float32 CPU tensors, written from the method as ComfyUI applies it (comfy/extra_samplers/uni_pc.py:
sample_unipc over SigmaConvert, UniPC multistep B(h) with data prediction; k_diffusion sample_euler), not from its
source. The model is a fixed elementwise toy denoiser D(x, s) = (0.7*x - (0.2*s)*x) + c*s, so the Java test can
evaluate the same function.

Prints, per case, the final x (after ComfyUI's division by alpha(t_last)), the last denoised and the sigma the flow
model's inverse noise scaling then sees, as Java float literals. Needs torch.
"""
import torch

f32 = torch.float32
X0 = torch.tensor([0.9, -1.3, 0.25, 2.1, -0.4, 0.05, -2.2, 1.15], dtype=f32).reshape(1, 2, 2, 2)
C = torch.tensor([0.3, -0.1, 0.5, 0.0, -0.6, 0.2, 0.9, -0.35], dtype=f32).reshape(1, 2, 2, 2)


def toy(x, s):
    return (0.7 * x - (0.2 * s) * x) + C * s


def log_alpha(s):
    return 0.5 * torch.log(1 / ((s * s) + 1))


def std(s):
    return torch.sqrt(1.0 - torch.exp(2.0 * log_alpha(s)))


def lam(s):
    la = log_alpha(s)
    return la - 0.5 * torch.log(1.0 - torch.exp(2.0 * la))


def x0_pred(x, s, calls):
    xin = x * ((s ** 2 + 1.0) ** 0.5)
    d = toy(xin, s)
    calls.append(float(s))
    eps = (xin - d) / s
    return (x - std(s) * eps) / torch.exp(log_alpha(s))


def bh_update(x, ms, tsl, t, order, corrector, bh2, calls):
    t0, m0 = tsl[-1], ms[-1]
    l0, lt = lam(t0), lam(t)
    h = lt - l0
    rks, d1 = [], []
    for i in range(1, order):
        rk = (lam(tsl[-(i + 1)]) - l0) / h
        rks.append(rk)
        d1.append((ms[-(i + 1)] - m0) / rk)
    rks.append(torch.tensor(1.0, dtype=f32))
    rks = torch.stack(rks)
    hh = -h
    hphi1 = torch.expm1(hh)
    hphik = hphi1 / hh - 1
    bh = torch.expm1(hh) if bh2 else hh
    rows, b, fact = [], [], 1
    for i in range(1, order + 1):
        rows.append(torch.pow(rks, i - 1))
        b.append(hphik * fact / bh)
        fact *= i + 1
        hphik = hphik / hh - 1 / fact
    R = torch.stack(rows)
    b = torch.stack(b)
    at = torch.exp(log_alpha(t))
    base = (std(t) / std(t0)) * x - (at * hphi1) * m0
    xt = base
    if d1:
        D = torch.stack(d1, dim=1)
        rp = torch.tensor([0.5], dtype=f32) if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
        xt = base - (at * bh) * torch.einsum('k,bkchw->bchw', rp, D)
    mt = None
    if corrector:
        rc = torch.tensor([0.5], dtype=f32) if order == 1 else torch.linalg.solve(R, b)
        mt = x0_pred(xt, t, calls)
        corr = torch.einsum('k,bkchw->bchw', rc[:-1], torch.stack(d1, dim=1)) if d1 else 0
        xt = base - (at * bh) * (corr + rc[-1] * (mt - m0))
    return xt, mt


def unipc(x, sigmas, bh2):
    steps = len(sigmas) - 1
    ts = sigmas.clone()
    if ts[-1] == 0:
        ts[-1] = 0.001
    order = min(3, steps - 1)
    x = x / torch.sqrt(1.0 + ts[0] ** 2.0)
    calls = []
    ms, tsl = [], []
    for si in range(steps):
        if si == 0:
            ms, tsl = [x0_pred(x, ts[0], calls)], [ts[0]]
        elif si < order:
            x, m = bh_update(x, ms, tsl, ts[si], si, True, bh2, calls)
            ms.append(m)
            tsl.append(ts[si])
        else:
            for step in range(si, si + (2 if si == steps - 1 else 1)):
                so = min(order, steps + 1 - step)
                x, m = bh_update(x, ms, tsl, ts[step], so, step != steps, bh2, calls)
                ms = ms[1:] + [ms[-1]] if order > 1 else ms
                tsl = tsl[1:] + [ts[step]] if order > 1 else [ts[step]]
                if step < steps:
                    ms[-1] = m
    x = x / torch.exp(log_alpha(ts[-1]))
    return x, ms[-1], ts[-1], calls


def euler(x, sigmas):
    den = None
    for i in range(len(sigmas) - 1):
        s = sigmas[i]
        den = toy(x, s)
        d = (x - den) / s
        x = x + d * (sigmas[i + 1] - s)
    return x, den, sigmas[-1], None


def jf(t):
    return "{" + ", ".join(repr(float(v)) + "f" for v in t.reshape(-1).tolist()) + "}"


CASES = {
    "S2": [1.0, 0.6, 0.0],
    "S3": [1.0, 0.8, 0.4, 0.0],
    "S4": [1.0, 0.9, 0.6, 0.3, 0.0],
    "S7": [1.0, 0.95, 0.85, 0.7, 0.5, 0.3, 0.1, 0.0],
    "CUT": [0.8, 0.6, 0.4, 0.2, 0.1],
}
if __name__ == "__main__":
    for name, s in CASES.items():
        sig = torch.tensor(s, dtype=f32)
        for sampler in ("uni_pc", "uni_pc_bh2", "euler"):
            if sampler == "euler":
                x, den, last, calls = euler(X0.clone(), sig)
            else:
                x, den, last, calls = unipc(X0.clone(), sig, sampler == "uni_pc_bh2")
            tag = name + "_" + sampler.upper()
            print(f"    static final float[] {tag}_X = {jf(x)};")
            print(f"    static final float[] {tag}_DEN = {jf(den)};")
            print(f"    static final float {tag}_LAST = {float(last)!r}f;")
            if calls is not None:
                print(f"    // {tag} model sigmas: {calls}")
