#!/usr/bin/env python3
"""Drives a ComfyUI-compatible server (dit4j serve) through the Flux API workflow of models.md §4.3 and its
SamplerCustomAdvanced variant, each plain and with TeaCache / MagCache / CompileModel / ParallelUNETLoader inserted,
and records per prompt the wall time, whether an image came back through /view, and the WebSocket events seen.
Python 3 standard library only (a minimal RFC 6455 client over `socket`).

  python3 bench/comfy_api_drive.py --url http://127.0.0.1:8188 --unet flux1-dev-random.safetensors \
      --t5 t5xxl_random.safetensors --clip clip_l.safetensors --vae ae.safetensors --size 1024 --steps 28 \
      --gpus 2 --json results.json

Each prompt gets its own seed, so the server's output cache cannot skip the sampler. The first prompt loads the models
(its time includes loading). Exit status 1 when any prompt fails or returns no image.
"""
import argparse
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid


# ------------------------------------------------------------------------------------------------ WebSocket client

class WebSocket:
    """A minimal client: handshake, masked text frames out, text/binary/ping/close frames in (fragments joined)."""

    def __init__(self, host, port, path, timeout=30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("server closed the WebSocket handshake")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ConnectionError(f"WebSocket handshake refused: {status!r}")
        self.buf = b""

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("WebSocket closed by the server")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self, timeout):
        """The next message as (opcode, bytes); opcode 1 text, 2 binary. Raises socket.timeout."""
        self.sock.settimeout(timeout)
        parts, first_op = [], None
        while True:
            b0, b1 = self._read(2)
            fin, op, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if op == 9:
                self._send(10, data)
                continue
            if op == 10:
                continue
            if op == 8:
                raise ConnectionError("WebSocket closed by the server")
            if op != 0:
                first_op = op
            parts.append(data)
            if fin:
                return first_op, b"".join(parts)

    def close(self):
        try:
            self._send(8, b"")
            self.sock.close()
        except OSError:
            pass


# ------------------------------------------------------------------------------------------------ HTTP

class Api:
    def __init__(self, url, token=None):
        self.url = url.rstrip("/")
        self.token = token

    def _req(self, method, path, body=None, timeout=60):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type", "")

    def json(self, method, path, body=None):
        status, raw, _ = self._req(method, path, body)
        return status, json.loads(raw) if raw else None

    def bytes(self, path):
        return self._req("GET", path)


# ------------------------------------------------------------------------------------------------ workflows

def flux_workflow(a, seed, custom):
    """models.md §4.3, at --size and --steps; custom=True: the SamplerCustomAdvanced variant (output slot 0)."""
    w = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": a.unet, "weight_dtype": "default"}},
        "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": a.t5, "clip_name2": a.clip, "type": "flux"}},
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": a.vae}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": a.prompt, "clip": ["2", 0]}},
        "5": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["4", 0], "guidance": 3.5}},
        "6": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["4", 0]}},
        "7": {"class_type": "EmptySD3LatentImage", "inputs": {"width": a.size, "height": a.size, "batch_size": 1}},
        "8": {"class_type": "ModelSamplingFlux", "inputs": {"model": ["1", 0], "max_shift": 1.15, "base_shift": 0.5,
                                                            "width": a.size, "height": a.size}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["3", 0]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "drive"}},
    }
    if custom:
        w["12"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": seed}}
        w["13"] = {"class_type": "BasicGuider", "inputs": {"model": ["8", 0], "conditioning": ["5", 0]}}
        w["14"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": a.sampler}}
        w["15"] = {"class_type": "BasicScheduler", "inputs": {"model": ["8", 0], "scheduler": a.scheduler, "steps": a.steps, "denoise": 1.0}}
        w["9"] = {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["12", 0], "guider": ["13", 0], "sampler": ["14", 0],
                                                                    "sigmas": ["15", 0], "latent_image": ["7", 0]}}
    else:
        w["9"] = {"class_type": "KSampler", "inputs": {"model": ["8", 0], "seed": seed, "steps": a.steps, "cfg": 1.0,
                                                      "sampler_name": a.sampler, "scheduler": a.scheduler, "positive": ["5", 0],
                                                      "negative": ["6", 0], "latent_image": ["7", 0], "denoise": 1.0}}
    return w


def insert(w, kind, gpus):
    """Inserts an acceleration node between ModelSamplingFlux (8) and the sampler's model input, or swaps the loader."""
    if kind == "plain":
        return w
    if kind == "parallel":
        w["1"] = {"class_type": "ParallelUNETLoader", "inputs": {"unet_name": w["1"]["inputs"]["unet_name"], "weight_dtype": "default",
                                                                 "num_gpus": gpus, "ulysses_degree": gpus, "ring_degree": 1,
                                                                 "cfg_degree": 1, "pipefusion_degree": 1}}
        return w
    node = {
        "teacache": {"class_type": "TeaCache", "inputs": {"model": ["8", 0], "model_type": "flux", "rel_l1_thresh": 0.4,
                                                          "start_percent": 0.0, "end_percent": 1.0, "cache_device": "cuda"}},
        "magcache": {"class_type": "MagCache", "inputs": {"model": ["8", 0], "model_type": "flux", "magcache_thresh": 0.24,
                                                          "retention_ratio": 0.1, "magcache_K": 5}},
        "compile": {"class_type": "CompileModel", "inputs": {"model": ["8", 0], "mode": "default", "backend": "inductor",
                                                             "fullgraph": False, "dynamic": False}},
    }[kind]
    w["20"] = node
    for nid in ("9", "13", "15"):
        if nid in w and w[nid]["inputs"].get("model") == ["8", 0]:
            w[nid]["inputs"]["model"] = ["20", 0]
    return w


# ------------------------------------------------------------------------------------------------ run

def run_prompt(api, ws, client, w, timeout):
    t0 = time.time()
    status, r = api.json("POST", "/prompt", {"prompt": w, "client_id": client})
    if status != 200:
        return {"ok": False, "http": status, "error": r}
    pid = r["prompt_id"]
    events, progress, binary = [], 0, 0
    done, error = False, None
    deadline = t0 + timeout
    while not done and time.time() < deadline:
        if ws is not None:
            try:
                op, data = ws.recv(timeout=max(0.1, min(5.0, deadline - time.time())))
            except socket.timeout:
                continue
            if op == 2:
                binary += 1
                continue
            m = json.loads(data)
            d = m.get("data", {})
            if d.get("prompt_id") not in (None, pid):
                continue
            t = m.get("type")
            if t == "progress":
                progress += 1
            elif t != "status":
                events.append(t)
            if t == "execution_error":
                error = d.get("exception_message")
            if t == "executing" and d.get("node") is None and d.get("prompt_id") == pid:
                done = True
        else:
            st, h = api.json("GET", f"/history/{pid}")
            if st == 200 and h and pid in h and h[pid].get("status", {}).get("completed") is not None:
                done = True
            else:
                time.sleep(0.25)
    wall = time.time() - t0
    st, h = api.json("GET", f"/history/{pid}")
    entry = (h or {}).get(pid, {})
    status_str = entry.get("status", {}).get("status_str")
    image = None
    for out in entry.get("outputs", {}).values():
        for img in out.get("images", []):
            q = urllib.parse.urlencode({"filename": img["filename"], "subfolder": img.get("subfolder", ""), "type": img.get("type", "output")})
            vs, raw, ctype = api.bytes("/view?" + q)
            image = {"file": img["filename"], "http": vs, "bytes": len(raw), "content_type": ctype,
                     "png": raw[:8] == b"\x89PNG\r\n\x1a\n"}
            break
    ok = done and status_str == "success" and image is not None and image["http"] == 200 and image["png"]
    res = {"ok": ok, "prompt_id": pid, "wall_s": round(wall, 3), "status": status_str, "image": image}
    if ws is not None:
        res["events"] = sorted(set(events))
        res["progress_events"] = progress
        res["binary_frames"] = binary
    if error:
        res["error"] = error
    if not done:
        res["error"] = res.get("error") or f"no completion within {timeout} s"
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8188")
    ap.add_argument("--token")
    ap.add_argument("--unet", default="flux1-dev.safetensors")
    ap.add_argument("--t5", default="t5xxl_fp16.safetensors")
    ap.add_argument("--clip", default="clip_l.safetensors")
    ap.add_argument("--vae", default="ae.safetensors")
    ap.add_argument("--prompt", default="a red fox in snow")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=28)
    ap.add_argument("--sampler", default="euler")
    ap.add_argument("--scheduler", default="simple")
    ap.add_argument("--gpus", type=int, default=1, help="num_gpus (= ulysses_degree) of the ParallelUNETLoader variant")
    ap.add_argument("--variants", default="plain,teacache,magcache,compile,parallel")
    ap.add_argument("--workflows", default="ksampler,custom")
    ap.add_argument("--repeat", type=int, default=1, help="run every prompt this many times (later runs are warm)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--ws-every", action="store_true", help="watch every prompt over the WebSocket (default: the first of each workflow; the rest poll /history)")
    ap.add_argument("--json")
    a = ap.parse_args()

    api = Api(a.url, a.token)
    u = urllib.parse.urlparse(a.url)
    st, stats = api.json("GET", "/system_stats")
    print(f"system_stats: HTTP {st}: {json.dumps((stats or {}).get('devices', []))[:300]}", flush=True)
    client = str(uuid.uuid4())
    results = []
    seed = 1000
    for wf in a.workflows.split(","):
        for i, kind in enumerate(a.variants.split(",")):
            for rep in range(a.repeat):
                seed += 1
                w = insert(flux_workflow(a, seed, wf == "custom"), kind, a.gpus)
                use_ws = a.ws_every or (i == 0 and rep == 0)
                ws = None
                if use_ws:
                    path = f"/ws?clientId={client}" + (f"&token={a.token}" if a.token else "")
                    ws = WebSocket(u.hostname, u.port or 80, path)
                    op, first = ws.recv(timeout=10)
                    if json.loads(first).get("type") != "status":
                        print("first WebSocket message is not status:", first[:200], flush=True)
                try:
                    r = run_prompt(api, ws, client, w, a.timeout)
                finally:
                    if ws is not None:
                        ws.close()
                r.update({"workflow": wf, "variant": kind, "run": rep + 1, "seed": seed})
                results.append(r)
                print(f"{wf:9s} {kind:9s} run {rep + 1}: {'OK ' if r['ok'] else 'FAIL'} {r['wall_s']:8.2f} s"
                      + (f"  events={r.get('events')} progress={r.get('progress_events')}" if 'events' in r else "")
                      + (f"  error={r['error']}" if r.get('error') else ""), flush=True)
    summary = {"url": a.url, "size": a.size, "steps": a.steps, "sampler": a.sampler, "scheduler": a.scheduler, "gpus": a.gpus,
               "all_ok": all(r["ok"] for r in results), "results": results}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)
    print("all ok" if summary["all_ok"] else "SOME PROMPTS FAILED", flush=True)
    sys.exit(0 if summary["all_ok"] else 1)


if __name__ == "__main__":
    main()
