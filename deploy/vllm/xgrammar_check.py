#!/usr/bin/env python3
"""Check strings against the xgrammar grammar that vLLM builds from a JSON schema.

Run with the vLLM venv's python (xgrammar 0.2.8 lives there). Reads one JSON object on stdin:
    {"schema": {...}, "accept": ["<json text>", ...], "reject": ["<json text>", ...]}
("accept"/"reject" are the expectations; "texts" may list strings with no expectation.)
Compiles the schema exactly as vLLM 0.32's xgrammar backend does with serve.sh's
disable_any_whitespace=true: compile_json_schema(schema, any_whitespace=False,
separators=(",", ":")), i.e. compact JSON only ("--any-whitespace" mirrors a server without it).
Each text goes to a fresh GrammarMatcher: it is accepted when accept_string() takes all of it
and the grammar is then complete (the stop token may follow). Writes one JSON object to stdout:
    {"compiled": true, "ok": bool, "results": [{"text", "expected", "accepted", "ok"}, ...]}
With --vllm-check it adds "vllm_supported": whether vLLM itself accepts the schema for xgrammar
(it refuses e.g. multipleOf, uniqueItems, pattern+maxLength); that imports vllm (~10-20 s).
Exit 0 when every expectation holds, 1 when one does not, 2 when the schema does not compile.
Tokenizer: --tokenizer DIR (default: the SmolLM2-135M folder if built) or --tokenizer raw (byte vocab).
"""

import argparse
import json
import os
import sys
from pathlib import Path


def default_tokenizer() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    model = Path(cache) / "sgr" / "smollm2-135m"
    return str(model) if (model / "tokenizer.json").is_file() else "raw"


def tokenizer_info(xgr, spec: str):
    if spec == "raw":  # one token per byte plus an end token: enough to compile and match strings
        return xgr.TokenizerInfo(
            [bytes([b]) for b in range(256)] + [b"</s>"],
            vocab_type=xgr.VocabType.RAW,
            stop_token_ids=[256],
        )
    from transformers import AutoTokenizer

    return xgr.TokenizerInfo.from_huggingface(AutoTokenizer.from_pretrained(spec))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default=default_tokenizer())
    ap.add_argument("--any-whitespace", action="store_true", help="allow whitespace between tokens")
    ap.add_argument(
        "--vllm-check", action="store_true", help="also ask vLLM whether it supports the schema"
    )
    args = ap.parse_args()
    req = json.load(sys.stdin)
    cases = (
        [(t, "accept") for t in req.get("accept", [])]
        + [(t, "reject") for t in req.get("reject", [])]
        + [(t, None) for t in req.get("texts", [])]
    )

    import xgrammar as xgr

    try:
        compiler = xgr.GrammarCompiler(tokenizer_info(xgr, args.tokenizer))
        compiled = compiler.compile_json_schema(
            json.dumps(req["schema"]),
            any_whitespace=args.any_whitespace,
            separators=None if args.any_whitespace else (",", ":"),
        )
    except Exception as e:  # noqa: BLE001 - report any compile failure as data
        print(json.dumps({"compiled": False, "error": f"{type(e).__name__}: {e}", "results": []}))
        return 2

    results = []
    for text, expected in cases:
        matcher = xgr.GrammarMatcher(compiled)
        accepted = bool(matcher.accept_string(text) and matcher.is_completed())
        ok = expected is None or accepted == (expected == "accept")
        results.append({"text": text, "expected": expected, "accepted": accepted, "ok": ok})
    all_ok = all(r["ok"] for r in results)
    out = {"compiled": True, "ok": all_ok, "tokenizer": args.tokenizer, "results": results}
    if args.vllm_check:
        from vllm.v1.structured_output.backend_xgrammar import (
            has_xgrammar_unsupported_json_features,
        )

        out["vllm_supported"] = not has_xgrammar_unsupported_json_features(req["schema"])
    print(json.dumps(out, indent=1))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
