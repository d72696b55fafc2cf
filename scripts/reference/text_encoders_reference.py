#!/usr/bin/env python3
"""Reference outputs of transformers' T5EncoderModel, UMT5EncoderModel and CLIPTextModel for dit4j's text-encoder
tests (org.dit4j.models.text).

Builds tiny models from configs with fixed seeds, overwrites every parameter with seeded random values (so that norm
weights and biases are not the trivial 1/0 of the default init), runs them in float32 on the CPU (deterministic, no
TF32), eager attention, and writes under --out:

  t5_v11.safetensors         T5 v1.1 encoder, HF names ("shared.weight", "encoder.block.N..."), F32
  umt5.safetensors           umT5 encoder (relative position bias in every layer), HF names with
                             "encoder.embed_tokens.weight" instead of "shared.weight", F32
  t5_scaled_fp8.safetensors  the T5 v1.1 model stored as ComfyUI "scaled fp8": every Linear weight F8_E4M3 with a
                             0-dim F32 "<layer>.scale_weight" (W = float(w8)·scale), a "scaled_fp8" marker tensor,
                             shared.weight as BF16, layer norms as F16, relative bias F32
  clip.safetensors           CLIP text model, HF names ("text_model.embeddings.token_embedding.weight", ...), F32
  text_io.safetensors        inputs and outputs of every case (ids I64, masks I64, outputs F32) and the relative
                             position bucket table of T5 for r = -300..300
  log.txt                    (written by the caller's tee)

Cases in text_io (prefix.name):
  t5.ids [2,140]: row 0 = 30 tokens + EOS(1) + pad(0); row 1 = 139 tokens + EOS  (140 > 128 reaches the last bucket)
  t5.hidden         last_hidden_state without attention mask (Flux)
  t5.mask, t5.hidden_masked   with the padding mask
  umt5.ids [2,40], umt5.mask, umt5.hidden_masked, umt5.hidden (no mask)
  fp8.hidden        the scaled-fp8 model on t5.ids, no mask (the weights the reference ran with are the dequantized ones)
  clip.ids [2,16]: row 0 = BOS(118), 5 tokens, EOS(119), EOS padding; row 1 = BOS, 14 tokens, EOS
  clip.hidden, clip.pooled      (eos_token_id = 119, the highest id, like CLIP-L's 49407)
  clip.mask, clip.hidden_masked, clip.pooled_masked   with the padding mask
  clip_legacy.ids   ids holding token 2 and higher ids than 2; clip_legacy.pooled is what HF pools with a legacy
                    config (eos_token_id = 2) on the same weights (transformers 5.17/5.18: argmax of the ids, i.e. the
                    first position of the highest id; with any other eos_token_id: the first position of that id)
  t5.buckets [601]  bucket of relative position r = -300..300 (bidirectional, 32 buckets, max distance 128)

Run: python3 text_encoders_reference.py --out DIR
"""
import argparse
import copy
import json
import struct
import sys

import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.use_deterministic_algorithms(True)

import transformers  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel  # noqa: E402

_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.float8_e4m3fn: "F8_E4M3",
           torch.int64: "I64", torch.int32: "I32"}


def safetensors_bytes(tensors, metadata):
    """{name: tensor} (sorted by name) in the safetensors format, without the safetensors package."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def save(path, tensors, metadata):
    with open(path, "wb") as f:
        f.write(safetensors_bytes(tensors, metadata))
    print(f"wrote {path}: {len(tensors)} tensors")


def eager(config):
    try:
        config._attn_implementation = "eager"
    except Exception as e:  # noqa: BLE001
        print("could not set eager attention:", e)
    return config


def randomize(model, seed, emb_std):
    """Seeded values for every parameter: Linear W ~ N(0, 1/in), biases N(0, 0.1²), norm weights 1 + N(0, 0.1²),
    embeddings N(0, emb_std²), T5 relative bias N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if "relative_attention_bias" in name:
                v = r
            elif "layer_norm" in name or "layernorm" in name:
                v = 1 + 0.1 * r if name.endswith("weight") else 0.1 * r
            elif "embed" in name or name.endswith("shared.weight"):
                v = emb_std * r
            elif p.dim() == 2:
                v = r / (p.shape[1] ** 0.5)
            else:
                v = 0.1 * r
            p.copy_(v)
            print(f"  {name} {list(p.shape)}")


def sync_embeddings(model):
    """The encoder looks tokens up in encoder.embed_tokens; make it hold shared.weight's values if not tied."""
    emb, shared = model.encoder.embed_tokens.weight, model.shared.weight
    if emb.data_ptr() != shared.data_ptr():
        print("  encoder.embed_tokens is not tied to shared: copying shared.weight into it")
        with torch.no_grad():
            emb.copy_(shared)


def buckets(attn):
    """Bucket of r = -300..300 from transformers' own code."""
    rel = torch.arange(-300, 301, dtype=torch.int64)
    try:
        return attn._relative_position_bucket(rel, bidirectional=True, num_buckets=32, max_distance=128).to(torch.int64)
    except Exception as e:  # noqa: BLE001
        print("static _relative_position_bucket failed (", e, "); reading buckets through compute_bias")
        a = copy.deepcopy(attn)
        with torch.no_grad():
            a.relative_attention_bias.weight.copy_(
                torch.arange(32, dtype=torch.float32)[:, None].expand_as(a.relative_attention_bias.weight))
            b = a.compute_bias(601, 601)
        return b[0, 0, 300].round().to(torch.int64)


def state(model, drop=()):
    sd = {}
    for k, v in model.state_dict().items():
        if k in drop:
            continue
        sd[k] = v.detach().clone().contiguous()
    return sd


def t5_config(cls, **kw):
    base = dict(vocab_size=100, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.0,
                layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
                pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    base.update(kw)
    return eager(cls(**base))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = args.out
    print("torch", torch.__version__, "transformers", transformers.__version__, "python", sys.version.split()[0])
    meta = {"torch": torch.__version__, "transformers": transformers.__version__,
            "script": "scripts/reference/text_encoders_reference.py"}
    io = {}

    # ------------------------------------------------------------------ T5 v1.1
    cfg = t5_config(T5Config)
    print("T5 config:", cfg.to_json_string(use_diff=False))
    t5 = T5EncoderModel(cfg).eval()
    randomize(t5, 1234, 1.0)
    sync_embeddings(t5)
    g = torch.Generator().manual_seed(7)
    ids = torch.zeros(2, 140, dtype=torch.int64)
    ids[0, :30] = torch.randint(2, 100, (30,), generator=g)
    ids[0, 30] = 1
    ids[1, :139] = torch.randint(2, 100, (139,), generator=g)
    ids[1, 139] = 1
    mask = torch.zeros(2, 140, dtype=torch.int64)
    mask[0, :31] = 1
    mask[1, :] = 1
    with torch.no_grad():
        io["t5.ids"] = ids
        io["t5.hidden"] = t5(input_ids=ids).last_hidden_state.float()
        io["t5.mask"] = mask
        io["t5.hidden_masked"] = t5(input_ids=ids, attention_mask=mask).last_hidden_state.float()
    io["t5.buckets"] = buckets(t5.encoder.block[0].layer[0].SelfAttention)
    sd = state(t5, drop=("encoder.embed_tokens.weight",))
    print("T5 names:", sorted(sd))
    save(f"{out}/t5_v11.safetensors", sd, dict(meta, model="T5EncoderModel (T5 v1.1)", config=cfg.to_json_string(use_diff=False)))

    # ------------------------------------------------------------------ T5 v1.1 as ComfyUI scaled fp8
    q = copy.deepcopy(t5)
    qsd = {"scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn)}
    with torch.no_grad():
        for name, p in q.named_parameters():
            if name == "encoder.embed_tokens.weight":
                continue
            if any(name.endswith(s) for s in (".q.weight", ".k.weight", ".v.weight", ".o.weight", ".wi_0.weight",
                                              ".wi_1.weight", ".wo.weight")):
                scale = (p.abs().max() / 448.0).float()
                w8 = (p / scale).to(torch.float8_e4m3fn)
                p.copy_(w8.float() * scale)
                qsd[name] = w8
                qsd[name[: -len("weight")] + "scale_weight"] = scale.reshape(())
            elif name == "shared.weight":
                b = p.to(torch.bfloat16)
                p.copy_(b.float())
                qsd[name] = b
            elif "layer_norm" in name:
                h = p.to(torch.float16)
                p.copy_(h.float())
                qsd[name] = h
            else:
                qsd[name] = p.detach().clone()
        sync_embeddings(q)
        io["fp8.hidden"] = q(input_ids=ids).last_hidden_state.float()
    print("scaled fp8 names:", sorted(qsd))
    save(f"{out}/t5_scaled_fp8.safetensors", qsd, dict(meta, model="T5 v1.1 as ComfyUI scaled fp8"))

    # ------------------------------------------------------------------ umT5
    ucfg = t5_config(UMT5Config)
    print("UMT5 config:", ucfg.to_json_string(use_diff=False))
    umt5 = UMT5EncoderModel(ucfg).eval()
    randomize(umt5, 4321, 1.0)
    sync_embeddings(umt5)
    uids = torch.zeros(2, 40, dtype=torch.int64)
    uids[0, :24] = torch.randint(2, 100, (24,), generator=g)
    uids[0, 24] = 1
    uids[1, :39] = torch.randint(2, 100, (39,), generator=g)
    uids[1, 39] = 1
    umask = torch.zeros(2, 40, dtype=torch.int64)
    umask[0, :25] = 1
    umask[1, :] = 1
    with torch.no_grad():
        io["umt5.ids"] = uids
        io["umt5.mask"] = umask
        io["umt5.hidden_masked"] = umt5(input_ids=uids, attention_mask=umask).last_hidden_state.float()
        io["umt5.hidden"] = umt5(input_ids=uids).last_hidden_state.float()
    usd = state(umt5, drop=("shared.weight",))
    print("umT5 names:", sorted(usd))
    save(f"{out}/umt5.safetensors", usd, dict(meta, model="UMT5EncoderModel", config=ucfg.to_json_string(use_diff=False)))

    # ------------------------------------------------------------------ CLIP text model
    ccfg = eager(CLIPTextConfig(vocab_size=120, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                num_attention_heads=4, max_position_embeddings=16, hidden_act="quick_gelu",
                                layer_norm_eps=1e-5, attention_dropout=0.0, bos_token_id=118, eos_token_id=119,
                                pad_token_id=119, projection_dim=32))
    print("CLIP config:", ccfg.to_json_string(use_diff=False))
    clip = CLIPTextModel(ccfg).eval()
    randomize(clip, 99, 0.5)
    cids = torch.full((2, 16), 119, dtype=torch.int64)
    cids[:, 0] = 118
    cids[0, 1:6] = torch.randint(0, 118, (5,), generator=g)
    cids[1, 1:15] = torch.randint(0, 118, (14,), generator=g)
    cmask = torch.zeros(2, 16, dtype=torch.int64)
    cmask[0, :7] = 1
    cmask[1, :] = 1
    with torch.no_grad():
        o = clip(input_ids=cids)
        io["clip.ids"] = cids
        io["clip.hidden"] = o.last_hidden_state.float()
        io["clip.pooled"] = o.pooler_output.float()
        om = clip(input_ids=cids, attention_mask=cmask)
        io["clip.mask"] = cmask
        io["clip.hidden_masked"] = om.last_hidden_state.float()
        io["clip.pooled_masked"] = om.pooler_output.float()
    # transformers 5 drops the "text_model." prefix inside CLIPTextModel; checkpoints (openai/clip-vit-large-patch14,
    # diffusers text_encoder/, ComfyUI clip_l) carry it, so the file does too
    csd = {(k if k.startswith("text_model.") else "text_model." + k): v for k, v in state(clip).items()}
    print("CLIP names:", sorted(csd))
    save(f"{out}/clip.safetensors", csd, dict(meta, model="CLIPTextModel", config=ccfg.to_json_string(use_diff=False)))

    # legacy config (eos_token_id = 2) on the same weights: which position does HF pool?
    lcfg = copy.deepcopy(ccfg)
    lcfg.eos_token_id = 2
    legacy = CLIPTextModel(lcfg).eval()
    legacy.load_state_dict(clip.state_dict())
    lids = cids.clone()
    lids[0, 3] = 2          # a token 2 in the middle, EOS (119, highest id) later
    lids[1, 5] = 117        # no token 2 in row 1
    lids[1, 9] = 2
    lids[1, 10] = 2
    with torch.no_grad():
        lo = legacy(input_ids=lids)
        io["clip_legacy.ids"] = lids
        io["clip_legacy.hidden"] = lo.last_hidden_state.float()
        io["clip_legacy.pooled"] = lo.pooler_output.float()
    for b in range(2):
        h, p = lo.last_hidden_state[b], lo.pooler_output[b]
        pos = [i for i in range(h.shape[0]) if torch.equal(h[i], p)]
        print(f"legacy pooled row {b} equals hidden positions {pos}; ids {lids[b].tolist()}")

    save(f"{out}/text_io.safetensors", io, meta)
    for k in sorted(io):
        v = io[k]
        print(f"io {k} {list(v.shape)} {v.dtype}" + (f" |x|max {v.abs().max().item():.4g}" if v.is_floating_point() else ""))
    print("done")


if __name__ == "__main__":
    main()
