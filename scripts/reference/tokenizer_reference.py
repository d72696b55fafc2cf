#!/usr/bin/env python3
"""Reference token ids for dit4j's Java tokenizers (org.dit4j.models.text.tokenizer), from the Python libraries.

Runs where transformers, tokenizers and sentencepiece are installed (the GPU machine); needs no network.

  python3 tokenizer_reference.py --clip DIR_WITH_vocab.json+merges.txt \
      --t5 t5-synthetic=DIR --t5 t5-synthetic-bytes=DIR \
      --train DIR_FOR_TRAINED_MODELS --out reference.json

CLIP variants written:
  clip_transformers  transformers.CLIPTokenizer.from_pretrained(dir) called as diffusers' Flux pipeline calls it
                     (padding="max_length", max_length=77, truncation=True). In transformers 5 this class is backed
                     by the tokenizers library; the class and version are recorded.
  clip_fast_file     tokenizers.Tokenizer.from_file on the tokenizer.json that class saves (ids without padding).
  clip_slow_emulated the transformers<=4 slow CLIPTokenizer path without ftfy (BasicTokenizer cleaning: HF's
                     BertNormalizer(clean_text, handle_chinese_chars, no accent stripping) + NFC + str.split + str.lower,
                     then CLIP's regex (regex module) and the tokenizers BPE model). Only needed where the slow class
                     is gone (transformers 5); when transformers.CLIPTokenizer is the slow class, clip_transformers is it.
T5 variants, per model folder holding spiece.model + tokenizer.json:
  tokenizers         tokenizers.Tokenizer.from_file(tokenizer.json): ids incl. </s>; padded/truncated to 512 and 256
                     for a few prompts (enable_truncation/enable_padding, pad id 0).
  sentencepiece      SentencePieceProcessor(model_file=spiece.model).encode(prompt) + [eos_id].
  transformers_converted  (trained models) the tokenizer.json that transformers' own T5Converter makes from the
                     spiece.model, if the converter can be run.
--train trains two small SentencePiece Unigram models with the default "nmt_nfkc" normalization (T5's charsmap):
trained-nfkc (no byte fallback, like T5) and trained-nfkc-bytes (byte fallback), on a generated corpus, and writes
spiece.model + a tokenizer.json in the layout of T5-v1.1's (Flux's tokenizer_2) for each.
"""
import argparse
import base64
import hashlib
import json
import os
import sys
import traceback
import unicodedata

LONG = (
    "A breathtaking panoramic view of an ancient mountain village at golden hour, with narrow cobblestone streets "
    "winding between weathered stone houses, wooden balconies overflowing with red geraniums, a small chapel with a "
    "copper bell tower, old men playing cards in the square, children chasing pigeons near a fountain, laundry "
    "hanging between windows, distant snow-capped peaks glowing pink, soft volumetric light, highly detailed, "
    "photorealistic, 35mm film grain, shallow depth of field, masterpiece, award winning photography. "
)

PROMPTS = [
    "a photo of a cat",
    "A majestic lion standing on a rock at sunset, highly detailed, 8k, trending on artstation",
    "A cinematic shot of a baby raccoon wearing an intricate italian priest robe.",
    "Hello, World! How's it going? I'm fine; you'll see... we've done it, they'd say.",
    "don't can't won't shouldn't I'd've y'all rock'n'roll O'Neil",
    "DON'T CAN'T I'M YOU'LL THEY'RE",
    "Price: $1,234.56 \u2014 50% off!!! (limited time) #sale @store",
    "The year 2024 had 365 days and 12 months; \u03c0\u22483.14159",
    "1st 2nd 3rd 10th 100,000 3.14 -42 +7 1e10",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m fa\u00e7ade jalape\u00f1o",
    "Cr\u00e8me br\u00fbl\u00e9e in S\u00e3o Paulo, Z\u00fcrich and Krak\u00f3w",
    "e\u0301 combining acute vs \u00e9 precomposed, and a\u0308 and n\u0303",
    "\u6771\u4eac\u30bf\u30ef\u30fc\u306e\u591c\u666f",
    "\u4e00\u53ea\u53ef\u7231\u7684\u732b\u5750\u5728\u7a97\u53f0\u4e0a",
    "Mixed\u4e2d\u6587and English\u6df7\u5408text",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8 \ud14c\uc2a4\ud2b8",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u039f\u0394\u039f\u03a3 \u03a3\u0391\u03a3",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e and \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "emoji test \U0001f431\U0001f680\u2728 and family \U0001f468\u200d\U0001f469\u200d\U0001f467 and flag \U0001f1eb\U0001f1f7 and skin \U0001f44d\U0001f3fd",
    "heart \u2764\ufe0f and keycap 1\ufe0f\u20e3",
    "\uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28 \uff54\uff45\uff58\uff54 \uff11\uff12\uff13",
    "\ufb01ne ligature \ufb02ow and \u2460 \u2461 \u2462 and \u00bd \u00bc and \u2122 \u00a9 \u00b2",
    "\u0130stanbul \u01c5ungla \ufb00 \u00df \u1e9e \u212a",
    "\u201ccurly quotes\u201d \u2018single\u2019 \u00abguillemets\u00bb \u2014 em dash \u2013 en dash \u2026",
    "   leading and trailing spaces   ",
    "multiple    internal     spaces\tand\ttabs\nand\nnewlines\r\nwindows",
    "zero\u200bwidth space and soft\u00adhyphen and nbsp\u00a0here and ideographic\u3000space and\u2028line sep",
    "control\u0007bell and \u0000null and replacement\ufffd char and \u001funit sep",
    "",
    "   ",
    "a",
    "A",
    ".",
    "$$$ %%% ^^^ &&& *** ((( ))) ... !!! ???",
    "snake_case, kebab-case, CamelCase, and ALLCAPS",
    "URL https://example.com/path?query=1&x=2 and email foo@bar.org",
    "<|startoftext|>hello<|endoftext|> world <|STARTOFTEXT|> upper",
    "</s> in the middle <pad> and <unk> and <extra_id_0> tokens",
    "<0x41> literal byte piece text and \u2581already\u2581escaped",
    "the sunset over the city at night with lights",
    "Hello World the cat sat on the mat",
    LONG * 5,
    LONG * 1,
]

PAD_PROMPTS = [0, 1, 25, 29, len(PROMPTS) - 2]  # prompts also recorded padded/truncated (T5: 512 and 256)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def attempt(log, what, fn):
    try:
        return fn()
    except Exception as e:  # recorded, the other variants still run
        log.setdefault("errors", []).append(f"{what}: {type(e).__name__}: {e}")
        traceback.print_exc()
        return None


def versions():
    v = {"python": sys.version.split()[0]}
    for name in ["transformers", "tokenizers", "sentencepiece", "regex", "protobuf"]:
        try:
            mod = __import__(name if name != "protobuf" else "google.protobuf", fromlist=["__version__"])
            v[name] = getattr(mod, "__version__", "?")
        except Exception as e:
            v[name] = f"not importable: {e}"
    try:
        import ftfy  # noqa: F401
        v["ftfy"] = "installed (slow CLIPTokenizer would use ftfy.fix_text)"
    except Exception:
        v["ftfy"] = "not installed"
    return v


# ---------------------------------------------------------------- CLIP

def bytes_to_unicode():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, n = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return table


def clip_refs(clip_dir, out_dir, log):
    res = {"files": {f: sha256(os.path.join(clip_dir, f)) for f in ["vocab.json", "merges.txt"]}, "variants": {}}

    def transformers_variant():
        import transformers
        try:
            tok = transformers.CLIPTokenizer.from_pretrained(clip_dir)
            how = "CLIPTokenizer.from_pretrained(dir)"
        except Exception as e:  # transformers 5 without tokenizer.json: build from the vocab and merges lists
            log.setdefault("errors", []).append(f"clip from_pretrained: {type(e).__name__}: {e}")
            vocab = json.load(open(os.path.join(clip_dir, "vocab.json"), encoding="utf-8"))
            lines = open(os.path.join(clip_dir, "merges.txt"), encoding="utf-8").read().strip().split("\n")[1:]
            tok = transformers.CLIPTokenizer(vocab=vocab, merges=[tuple(l.split()) for l in lines])
            how = "CLIPTokenizer(vocab=dict, merges=list)"
        info = {"constructed_by": how, "class": f"{type(tok).__module__}.{type(tok).__name__}",
                "is_fast": bool(getattr(tok, "is_fast", False)),
                "pad_token": str(tok.pad_token), "pad_token_id": tok.pad_token_id, "prompts": []}
        for p in PROMPTS:
            enc = tok(p, padding="max_length", max_length=77, truncation=True)
            full = tok(p, truncation=False)["input_ids"]
            info["prompts"].append({"padded": list(enc["input_ids"]), "mask": list(enc["attention_mask"]), "ids": list(full),
                                    "tokens": tok.tokenize(p)})
        if hasattr(tok, "backend_tokenizer"):
            path = os.path.join(out_dir, "clip-tokenizer.json")
            tok.backend_tokenizer.save(path)
            info["saved_tokenizer_json"] = os.path.basename(path)
        return info

    res["variants"]["clip_transformers"] = attempt(log, "clip_transformers", transformers_variant)

    def fast_file_variant():
        from tokenizers import Tokenizer
        t = Tokenizer.from_file(os.path.join(out_dir, "clip-tokenizer.json"))
        return {"prompts": [{"ids": t.encode(p).ids, "tokens": t.encode(p).tokens} for p in PROMPTS]}

    res["variants"]["clip_fast_file"] = attempt(log, "clip_fast_file", fast_file_variant)

    def slow_emulated_variant():
        import regex
        from tokenizers import normalizers
        from tokenizers.models import BPE
        vocab = json.load(open(os.path.join(clip_dir, "vocab.json"), encoding="utf-8"))
        bpe = BPE.from_file(os.path.join(clip_dir, "vocab.json"), os.path.join(clip_dir, "merges.txt"),
                            end_of_word_suffix="</w>", continuing_subword_prefix="", unk_token="<|endoftext|>")
        bert = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)
        pat = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                            regex.IGNORECASE)
        specials = {"<|startoftext|>": vocab["<|startoftext|>"], "<|endoftext|>": vocab["<|endoftext|>"]}
        benc = bytes_to_unicode()

        def ids_of(text):
            out = []
            for part in regex.split(r"(<\|startoftext\|>|<\|endoftext\|>)", text):
                if part in specials:
                    out.append(specials[part])
                    continue
                t = unicodedata.normalize("NFC", bert.normalize_str(part))
                t = " ".join(w.lower() for w in t.strip().split())
                for w in pat.findall(t):
                    if w in specials:
                        out.append(specials[w])
                        continue
                    enc = "".join(benc[b] for b in w.encode("utf-8"))
                    out.extend(tk.id for tk in bpe.tokenize(enc))
            return out

        return {"prompts": [{"ids": [specials["<|startoftext|>"]] + ids_of(p) + [specials["<|endoftext|>"]]} for p in PROMPTS]}

    res["variants"]["clip_slow_emulated"] = attempt(log, "clip_slow_emulated", slow_emulated_variant)
    return res


# ---------------------------------------------------------------- T5

def read_normalizer_spec(model_bytes):
    """(charsmap bytes, name) from a serialized ModelProto: field 3 (NormalizerSpec) → 1 name, 2 charsmap."""
    def varint(b, i):
        v, s = 0, 0
        while True:
            x = b[i]; i += 1
            v |= (x & 0x7F) << s
            s += 7
            if not x & 0x80:
                return v, i

    def fields(b):
        i = 0
        while i < len(b):
            tag, i = varint(b, i)
            f, w = tag >> 3, tag & 7
            if w == 0:
                v, i = varint(b, i)
            elif w == 1:
                v, i = b[i:i + 8], i + 8
            elif w == 2:
                n, i = varint(b, i)
                v, i = b[i:i + n], i + n
            elif w == 5:
                v, i = b[i:i + 4], i + 4
            else:
                raise ValueError(f"wire type {w}")
            yield f, w, v

    charsmap, name = b"", ""
    for f, w, v in fields(model_bytes):
        if f == 3 and w == 2:
            for f2, w2, v2 in fields(v):
                if f2 == 1:
                    name = v2.decode("utf-8")
                elif f2 == 2:
                    charsmap = bytes(v2)
    return charsmap, name


def write_t5_tokenizer_json(spm_path, json_path):
    """A tokenizer.json in the layout of T5-v1.1's (Flux tokenizer_2): Precompiled + Strip(right) + Replace(' {2,}'→'▁'),
    Metaspace(prepend_scheme first), TemplateProcessing $A </s>, Unigram vocab from the model."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=spm_path)
    charsmap, _ = read_normalizer_spec(open(spm_path, "rb").read())
    norms = []
    if charsmap:
        norms.append({"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode("ascii")})
    norms += [{"type": "Strip", "strip_left": False, "strip_right": True},
              {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "\u2581"}]
    vocab = [[sp.id_to_piece(i), float(sp.get_score(i))] for i in range(sp.get_piece_size())]
    added = [{"id": i, "content": sp.id_to_piece(i), "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i in range(sp.get_piece_size()) if sp.is_control(i) or sp.is_unknown(i)]
    eos = sp.eos_id()
    doc = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": norms},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True, "prepend_scheme": "first"},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                           "special_tokens": {"</s>": {"id": "</s>", "ids": [eos], "tokens": ["</s>"]}}},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True, "prepend_scheme": "always"},
        "model": {"type": "Unigram", "unk_id": sp.unk_id(), "vocab": vocab,
                  "byte_fallback": any(sp.IsByte(i) for i in range(sp.get_piece_size()))},
    }
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)


def corpus_lines():
    subjects = ["cat", "dog", "woman", "man", "child", "robot", "dragon", "castle", "forest", "city", "river", "mountain",
                "ship", "car", "flower", "tree", "house", "bird", "horse", "lion", "raccoon", "priest", "village", "street"]
    adjs = ["red", "blue", "green", "old", "young", "beautiful", "dark", "bright", "small", "huge", "ancient", "modern",
            "golden", "silver", "detailed", "cinematic", "majestic", "cozy", "misty", "sunny"]
    places = ["in the park", "on a hill", "at sunset", "under the stars", "near the sea", "in Paris", "in T\u014dky\u014d",
              "in Z\u00fcrich", "in S\u00e3o Paulo", "in Krak\u00f3w", "by the lake", "at night", "in the rain"]
    styles = ["photo", "painting", "illustration", "3d render", "sketch", "watercolor", "oil painting", "film still"]
    extra = ["caf\u00e9 cr\u00e8me br\u00fbl\u00e9e na\u00efve r\u00e9sum\u00e9 fa\u00e7ade jalape\u00f1o \u00c5ngstr\u00f6m",
             "Stra\u00dfe M\u00fcller \u00fcber sch\u00f6n Gr\u00fc\u00dfe", "\u00e9t\u00e9 \u00e0 la plage, tr\u00e8s jolie",
             "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440", "\u6771\u4eac \u65e5\u672c\u8a9e \u4e2d\u6587",
             "I'm you're don't can't won't it's we've they'd", "1 2 3 10 100 2024 3.14 50% $5 #1 @home",
             "(a) [b] {c} \"quoted\" 'single' - -- ... ! ? ; : / & + = * _"]
    lines = []
    k = 0
    for s in subjects:
        for a in adjs:
            for p in places:
                st = styles[k % len(styles)]
                lines.append(f"A {st} of a {a} {s} {p}, highly detailed.")
                if k % 7 == 0:
                    lines.append(extra[k % len(extra)])
                k += 1
    return lines


def train_models(train_dir, log):
    import sentencepiece as spm
    os.makedirs(train_dir, exist_ok=True)
    corpus = os.path.join(train_dir, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(corpus_lines()) + "\n")
    made = {}
    for name, bf in [("trained-nfkc", False), ("trained-nfkc-bytes", True)]:
        d = os.path.join(train_dir, name)
        os.makedirs(d, exist_ok=True)
        prefix = os.path.join(d, "spiece")
        spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, vocab_size=700, model_type="unigram",
                                       normalization_rule_name="nmt_nfkc", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                       byte_fallback=bf, hard_vocab_limit=False, num_threads=1, character_coverage=0.9995,
                                       minloglevel=2)
        write_t5_tokenizer_json(prefix + ".model", os.path.join(d, "tokenizer.json"))
        os.replace(prefix + ".model", os.path.join(d, "spiece.model"))
        if os.path.exists(prefix + ".vocab"):
            os.remove(prefix + ".vocab")
        made[name] = d
    return made


def t5_refs(name, d, out_dir, log):
    res = {"files": {f: sha256(os.path.join(d, f)) for f in ["spiece.model", "tokenizer.json"]}, "variants": {}}

    def hf():
        from tokenizers import Tokenizer
        path = os.path.join(d, "tokenizer.json")
        t = Tokenizer.from_file(path)
        out = {"prompts": []}
        for p in PROMPTS:
            e = t.encode(p)
            row = {"ids": e.ids, "tokens": e.tokens}
            if t.normalizer is not None:
                row["normalized"] = t.normalizer.normalize_str(p)
            out["prompts"].append(row)
        for n in (512, 256):
            tt = Tokenizer.from_file(path)
            tt.enable_truncation(max_length=n)
            tt.enable_padding(length=n, pad_id=0, pad_token="<pad>")
            out[f"padded_{n}"] = {str(i): {"ids": tt.encode(PROMPTS[i]).ids, "mask": tt.encode(PROMPTS[i]).attention_mask}
                                  for i in PAD_PROMPTS}
        return out

    res["variants"]["tokenizers"] = attempt(log, f"{name}/tokenizers", hf)

    def spm_variant():
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "spiece.model"))
        out = {"eos_id": sp.eos_id(), "pad_id": sp.pad_id(), "unk_id": sp.unk_id(), "prompts": []}
        for p in PROMPTS:
            row = {"ids": sp.encode(p) + [sp.eos_id()], "pieces": sp.encode(p, out_type=str)}
            if hasattr(sp, "normalize"):
                row["normalized"] = sp.normalize(p)
            out["prompts"].append(row)
        return out

    res["variants"]["sentencepiece"] = attempt(log, f"{name}/sentencepiece", spm_variant)

    def converted():
        from transformers.convert_slow_tokenizer import T5Converter
        from tokenizers import Tokenizer

        class Orig:
            vocab_file = os.path.join(d, "spiece.model")
            _extra_ids = 0
            legacy = True
            add_prefix_space = True

            def convert_tokens_to_ids(self, tok):
                import sentencepiece as spm
                return spm.SentencePieceProcessor(model_file=self.vocab_file).piece_to_id(tok)

        tk = T5Converter(Orig()).converted()
        path = os.path.join(out_dir, f"{name}.converted-tokenizer.json")
        tk.save(path)
        t = Tokenizer.from_file(path)
        return {"saved": os.path.basename(path), "prompts": [{"ids": t.encode(p).ids} for p in PROMPTS]}

    if name.startswith("trained"):
        res["variants"]["transformers_converted"] = attempt(log, f"{name}/transformers_converted", converted)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", help="folder with CLIP vocab.json + merges.txt")
    ap.add_argument("--t5", action="append", default=[], help="name=folder with spiece.model + tokenizer.json")
    ap.add_argument("--train", help="folder where the two trained SentencePiece models are written")
    ap.add_argument("--out", required=True, help="output JSON")
    args = ap.parse_args()
    out_dir = os.path.dirname(os.path.abspath(args.out))
    log = {}
    result = {"generator": "scripts/reference/tokenizer_reference.py", "versions": versions(), "prompts": PROMPTS,
              "pad_prompts": PAD_PROMPTS}
    if args.clip:
        result["clip"] = clip_refs(args.clip, out_dir, log)
    t5 = {}
    for spec in args.t5:
        name, d = spec.split("=", 1)
        t5[name] = t5_refs(name, d, out_dir, log)
    if args.train:
        made = attempt(log, "train", lambda: train_models(args.train, log)) or {}
        for name, d in made.items():
            t5[name] = t5_refs(name, d, out_dir, log)
    result["t5"] = t5
    result["errors"] = log.get("errors", [])
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=True, indent=None, separators=(",", ":"))
    print(json.dumps(result["versions"], indent=1))
    print("errors:", json.dumps(result["errors"], indent=1))


if __name__ == "__main__":
    main()
