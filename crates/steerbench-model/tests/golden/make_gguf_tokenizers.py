#!/usr/bin/env python3
"""Tiny GGUF tokenizers (metadata only, no tensors) and the token ids transformers gives
for them, for tests/gguf_tokenizers.rs.

Run from anywhere:  python3 crates/steerbench-model/tests/golden/make_gguf_tokenizers.py
Needs transformers (>= 5), gguf, sentencepiece/protobuf are not needed (PyPI).

Every vocabulary here is invented for the test. Files written into `tokenizers/`:
  sp_llama.gguf     SentencePiece-style (`tokenizer.ggml.model = llama`), architecture llama:
                    scores give the merge order, dummy prefix `\u2581`, BOS added,
                    a control and a user-defined token, byte fallback.
  sp_gemma3.gguf    the same tokenizer model as Gemma files write it: architecture gemma3,
                    no dummy prefix, whitespace-run tokens stored as real spaces,
                    `\n` runs as user-defined tokens, merge order = file order, `<bos>`.
  bl_<pre>.gguf     byte-level BPE (`gpt2`) with `tokenizer.ggml.pre = <pre>` for each
                    pre-tokenizer whose regex differs (qwen2, deepseek-r1-qwen, llama-bpe).
  expected.json     {file: {text: ids}} with add_special_tokens=True, and the decoded text.
"""
import json
import os
import shutil
import tempfile

import gguf
from transformers import AutoTokenizer

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizers")

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

TEXTS = [
    "the cat sat",
    "hello there, the hat!",
    "  two  spaces and   three",
    "line one\nline two\n\nafter a blank\n\n\nend",
    "digits 12345 and 3.14",
    "caf\u00e9 na\u00efve \u65e5\u672c \U0001f600",
    "<start_of_turn>user\nthe cat<end_of_turn>",
    "a<mark>b <mark> the",
    " leading space",
    "trailing space ",
    "\ttab\tseparated",
    "WHO'S there? it's me",
]

WORDS = ["the", "cat", "sat", "hat", "hello", "there", "line", "one", "two", "end", "and",
         "after", "blank", "space", "spaces", "three", "digits", "user", "it", "me", "who",
         "lead", "ing", "trail", "tab", "separ", "ated", "caf", "na"]


def sp_pieces():
    """SentencePiece-like pieces: single chars, bigrams and words, with and without the
    word-start marker."""
    chars = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\u00e9")
    pieces = ["\u2581"] + chars
    for w in WORDS:
        for i in range(2, len(w) + 1):
            for p in (w[:i], "\u2581" + w[:i]):
                if p not in pieces:
                    pieces.append(p)
    for p in ["th", "he", "at", "er", "in", "an", "on", "re", "\u2581t", "\u2581a", "\u2581s"]:
        if p not in pieces:
            pieces.append(p)
    return pieces


def write(path, arch, kv):
    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    kv(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def sp_llama(path):
    tokens = ["<unk>", "<s>", "</s>"]
    types = [UNKNOWN, CONTROL, CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [BYTE] * 256
    tokens += ["<start_of_turn>", "<end_of_turn>", "<mark>"]
    types += [CONTROL, CONTROL, USER_DEFINED]
    pieces = sp_pieces()
    tokens += pieces
    types += [NORMAL] * len(pieces)
    # Scores: not the file order, so a converter that sorts by position fails.
    scores = [0.0] * len(tokens)
    for i, p in enumerate(pieces):
        scores[len(tokens) - len(pieces) + i] = -float(len(p) * 10 + (i * 7) % 13)

    def kv(w):
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
        w.add_add_space_prefix(True)
    write(path, "llama", kv)


def sp_gemma3(path):
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    types = [CONTROL] * 7
    tokens += ["\n", "\n\n", "\n\n\n", "  ", "   ", "<mark>"]
    types += [USER_DEFINED] * 6
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [BYTE] * 256
    pieces = sp_pieces()
    tokens += pieces
    types += [NORMAL] * len(pieces)
    # Gemma's scores do not follow the merge order: make them disagree with it.
    scores = [-1000.0] * (len(tokens) - len(pieces)) + [float((i * 31) % 97) for i in range(len(pieces))]

    def kv(w):
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(2)
        w.add_eos_token_id(1)
        w.add_unk_token_id(3)
        w.add_pad_token_id(0)
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
        w.add_add_space_prefix(False)
    write(path, "gemma3", kv)


def byte_level(path, pre):
    byte_chars = {}
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_chars = {b: chr(c) for b, c in zip(bs, cs)}
    sp = byte_chars[ord(" ")]
    nl = byte_chars[ord("\n")]
    tokens = [byte_chars[b] for b in range(256)]
    merges = []

    def add(a, b):
        if a + b not in tokens:
            merges.append(f"{a} {b}")
            tokens.append(a + b)
    for w in WORDS:
        prev = w[0]
        for c in w[1:]:
            add(prev, c)
            prev += c
        add(sp, w)
    for x, y in [(sp, sp), (sp + sp, sp), (nl, nl), ("1", "2"), ("12", "3"), ("4", "5")]:
        add(x, y)
    types = [NORMAL] * len(tokens)
    tokens += ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types += [CONTROL] * 3

    def kv(w):
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(len(tokens) - 3)
        w.add_eos_token_id(len(tokens) - 1)
        w.add_add_bos_token(False)
    arch = "qwen2" if "qwen" in pre else "llama"
    write(path, arch, kv)


def main():
    os.makedirs(HERE, exist_ok=True)
    files = {"sp_llama.gguf": sp_llama, "sp_gemma3.gguf": sp_gemma3}
    for pre in ["qwen2", "deepseek-r1-qwen", "llama-bpe"]:
        files[f"bl_{pre}.gguf"] = lambda p, pre=pre: byte_level(p, pre)
    expected = {}
    for name, make in files.items():
        path = os.path.join(HERE, name)
        make(path)
        # transformers reads a GGUF from a folder; give it one with only this file.
        with tempfile.TemporaryDirectory() as d:
            shutil.copy(path, d)
            tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
            expected[name] = {
                "encode": {t: tok.encode(t, add_special_tokens=True) for t in TEXTS},
                "decode": {t: tok.decode(tok.encode(t, add_special_tokens=False)) for t in TEXTS},
            }
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
