#!/usr/bin/env python3
"""Build a tiny random-weight Qwen2 model plus an ASCII byte-level BPE tokenizer, fully offline.

Run with the vLLM venv's python (needs torch, transformers, tokenizers, safetensors):
    python build_tiny_model.py [--out DIR] [--force]
Default DIR: ${XDG_CACHE_HOME:-$HOME/.cache}/sgr/tiny-model. Deterministic (fixed seeds).
Idempotent: a finished build leaves DIR/.sgr-build-complete; it is skipped unless --force.
The weights are random: the output is gibberish, but it is enough to run vLLM and its
structured-output (xgrammar) constraints for real.
"""

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

BUILD_ID = "sgr-tiny-qwen2-v1"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB_TARGET = 1024
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def default_out() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "sgr" / "tiny-model"


def training_text(seed: int = 0) -> str:
    """A few KB of shopping/discount/JSON-ish English with digits, braces, quotes, colons and %."""
    rng = random.Random(seed)
    products = [
        "shoes",
        "jacket",
        "laptop",
        "coffee",
        "headphones",
        "backpack",
        "lamp",
        "watch",
        "book",
        "tea",
    ]
    names = ["Alice", "Bob", "Carol", "Dan", "Eve", "Frank", "Grace", "Heidi"]
    tiers = ["bronze", "silver", "gold", "platinum"]
    phrases = [
        "Thanks for shopping with us!",
        "Here is a special offer just for you.",
        "Your loyalty means a lot to us.",
        "Enjoy a discount on your next order.",
        "Limited time deal, do not miss it.",
        "We saved this price for you.",
    ]
    lines = []
    for i in range(160):
        p, n, t = rng.choice(products), rng.choice(names), rng.choice(tiers)
        pct = round(rng.uniform(0, 30), 1)
        price = round(rng.uniform(1, 500), 2)
        kind = i % 4
        if kind == 0:
            lines.append(f"Hi {n}, get {pct}% off the {p} today! {rng.choice(phrases)}")
        elif kind == 1:
            lines.append(
                json.dumps({"discount_percent": pct, "message": f"{pct}% off {p} for {n}"})
            )
        elif kind == 2:
            lines.append(
                json.dumps(
                    {
                        "customer_id": f"c-{rng.randint(1, 9999)}",
                        "tier": t,
                        "cart": [
                            {
                                "sku": f"SKU-{rng.randint(100, 999)}",
                                "price": price,
                                "qty": rng.randint(1, 5),
                            }
                        ],
                        "allowed": True,
                        "note": None,
                    }
                )
            )
        else:
            lines.append(
                f"Order #{rng.randint(1000, 99999)}: {p} costs ${price}; {t} members save {pct}% (cap: 7.5%)."
            )
    # Make sure every printable ASCII character is seen at least once.
    lines.append("".join(chr(c) for c in range(32, 127)))
    return "\n".join(lines) + "\n"


def build_tokenizer(text: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    # Byte-level symbols for printable ASCII plus newline only: the model can then never emit
    # control characters (strict JSON parsers reject them inside strings).
    alphabet = [
        pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(chr(c))[0][0]
        for c in [*range(32, 127), 10]
    ]
    assert len(set(alphabet)) == 96 and all(len(a) == 1 for a in alphabet), alphabet

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_TARGET,
        special_tokens=SPECIALS,
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
    assert all(len(t) > 1 or t in alphabet for t in tok.get_vocab() if t not in SPECIALS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )


def build(out: Path) -> None:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    random.seed(0)
    torch.manual_seed(0)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    tokenizer = build_tokenizer(training_text())
    tokenizer.save_pretrained(tmp)
    vocab = len(tokenizer)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")

    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos,
        pad_token_id=pad,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        dtype="float32",
    )
    model = Qwen2ForCausalLM(config).to(torch.float32).eval()
    model.save_pretrained(tmp, safe_serialization=True)
    GenerationConfig(eos_token_id=eos, pad_token_id=pad).save_pretrained(tmp)

    (tmp / ".sgr-build-complete").write_text(BUILD_ID + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(
        f"[tiny-model] vocab={vocab} eos={eos} pad={pad} params={sum(p.numel() for p in model.parameters())}",
        file=sys.stderr,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=default_out())
    ap.add_argument("--force", action="store_true", help="rebuild even if already built")
    args = ap.parse_args()
    out = args.out.expanduser().resolve()
    marker = out / ".sgr-build-complete"
    if not args.force and marker.is_file() and marker.read_text().strip() == BUILD_ID:
        print(f"[tiny-model] already built: {out}", file=sys.stderr)
        print(out)
        return 0
    t0 = time.monotonic()
    print(f"[tiny-model] building {out}", file=sys.stderr)
    build(out)
    print(f"[tiny-model] done in {time.monotonic() - t0:.1f} s: {out}", file=sys.stderr)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
