#!/usr/bin/env python3
"""Smoke-test a running vLLM server: /v1/models, then N schema-constrained chat completions.

Stdlib only (any python3). Checks that every output parses with json.loads and respects the
schema's bounds (discount 0..7.5, message <= 80 chars, no extra keys). Exit 0 only if all pass.
    python3 smoke_test.py [--base-url URL] [--model NAME] [-n 10]
Defaults come from $VLLM_BASE_URL / $VLLM_MODEL, else the env file that `serve.sh --background`
writes (${XDG_CACHE_HOME:-~/.cache}/sgr/run/vllm.env), else http://127.0.0.1:8000/v1 and smollm2-135m.
"""

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

SCHEMA = {
    "type": "object",
    "properties": {
        "discount_percent": {"type": "number", "minimum": 0, "maximum": 7.5},
        "message": {"type": "string", "maxLength": 80},
    },
    "required": ["discount_percent", "message"],
    "additionalProperties": False,
}


def env_defaults() -> dict:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    path = Path(os.environ.get("VLLM_PIDFILE", Path(cache) / "sgr/run/vllm.pid")).with_suffix(
        ".env"
    )
    vals = {}
    if path.is_file():
        vals = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {
        "url": os.environ.get("VLLM_BASE_URL")
        or vals.get("VLLM_BASE_URL")
        or "http://127.0.0.1:8000/v1",
        "model": os.environ.get("VLLM_MODEL") or vals.get("VLLM_MODEL") or "smollm2-135m",
    }


def call(url: str, body: dict | None = None, timeout: float = 120) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)


def check(content: str) -> str | None:
    try:
        obj = json.loads(content)
    except ValueError as e:
        return f"not JSON: {e}"
    if not isinstance(obj, dict) or set(obj) != {"discount_percent", "message"}:
        return f"wrong keys: {obj!r}"
    d, m = obj["discount_percent"], obj["message"]
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d <= 7.5:
        return f"discount out of bounds: {d!r}"
    if not isinstance(m, str) or len(m) > 80:
        return f"bad message: {m!r}"
    return None


def main() -> int:
    dflt = env_defaults()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", default=dflt["url"])
    ap.add_argument("--model", default=dflt["model"])
    ap.add_argument("-n", type=int, default=10)
    args = ap.parse_args()
    base = args.base_url.rstrip("/")

    models = [m["id"] for m in call(f"{base}/models")["data"]]
    print(f"models at {base}: {models}")
    if args.model not in models:
        print(f"FAIL: model {args.model!r} not served", file=sys.stderr)
        return 1
    body = {
        "model": args.model,
        "messages": [
            {"role": "system", "content": "You make discount offers as JSON."},
            {"role": "user", "content": "Gold tier customer, cart 120.50 USD. Make an offer."},
        ],
        "max_tokens": 200,
        "temperature": 1.0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "offer", "schema": SCHEMA, "strict": True},
        },
    }
    failures, latencies = 0, []
    for i in range(args.n):
        t0 = time.monotonic()
        choice = call(f"{base}/chat/completions", body)["choices"][0]
        latencies.append(time.monotonic() - t0)
        err = check(choice["message"]["content"])
        failures += err is not None
        print(
            f"{i + 1:3d} {latencies[-1]:.3f}s {choice['finish_reason']:6s} "
            f"{'FAIL ' + err if err else 'ok'} {choice['message']['content'][:100]}"
        )
    print(
        f"{args.n - failures} passed, {failures} failed; latency median {statistics.median(latencies):.3f}s "
        f"max {max(latencies):.3f}s"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
