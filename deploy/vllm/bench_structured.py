#!/usr/bin/env python3
"""Measure a running vLLM server on schema-constrained offers (stdlib only, any python3).

    python3 bench_structured.py [--url URL] [--model NAME] [--sequential 4] [--concurrent 8]
                                [--guided-json 4] [--max-tokens 400] [--temperature 0.7]
URL and NAME default to $VLLM_BASE_URL / $VLLM_MODEL (serve.sh --background writes them to
~/.cache/sgr/run/vllm.env), else the server's first model.

Three runs, each printing one line per answer (latency, completion tokens, tokens/s, schema check):
  sequential  N requests one after another, response_format json_schema (strict)
  concurrent  N requests at once, response_format json_schema (strict)
  guided-json N requests in the prototype's removed form (extra_body guided_json +
              guided_decoding_backend xgrammar), which vLLM >= 0.12 ignores
"""

import argparse
import json
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

INTENTS = ["price_sensitive", "hesitant", "comparison_shopping", "distracted", "support_needed"]
SCHEMA = {
    "type": "object",
    "properties": {
        "routing": {
            "type": "object",
            "properties": {
                "intent": {"type": "string", "enum": INTENTS},
                "tone": {"type": "string", "enum": ["friendly", "reassuring", "urgent"]},
                "summary": {"type": "string", "maxLength": 80},
            },
            "required": ["intent", "tone", "summary"],
            "additionalProperties": False,
        },
        "pricing": {
            "type": "object",
            "properties": {
                "churn_analysis": {"type": "string", "maxLength": 80},
                "margin_math": {"type": "string", "maxLength": 80},
                "max_allowed_discount": {"type": "number", "minimum": 12.0, "maximum": 12.0},
                "discount_percent": {"type": "number", "minimum": 1.0, "maximum": 12.0},
                "customer_message": {"type": "string", "maxLength": 200},
            },
            "required": [
                "churn_analysis",
                "margin_math",
                "max_allowed_discount",
                "discount_percent",
                "customer_message",
            ],
            "additionalProperties": False,
        },
    },
    "required": ["routing", "pricing"],
    "additionalProperties": False,
}
SYSTEM = (
    "You are a discount manager for an online shop. Answer with one JSON object only: "
    "routing (intent, tone, summary) and pricing (churn_analysis, margin_math, "
    "max_allowed_discount, discount_percent, customer_message). The discount may not exceed "
    "max_allowed_discount, 12 percent."
)
USER = (
    "Customer c-{i} (tier {tier}) left a cart of {qty} x {product} at ${price} after viewing the "
    "shipping costs {views} times. Product margin 35%. Decide a discount and write the message."
)
PRODUCTS = ["running shoes", "rain jacket", "laptop stand", "coffee grinder", "headphones"]
TIERS = ["bronze", "silver", "gold", "platinum"]


def validate(value, schema, path="$"):
    """The subset of JSON Schema that SCHEMA uses; returns a list of error strings."""
    errors = []
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        props = schema.get("properties", {})
        errors += [f"{path}: missing {k}" for k in schema.get("required", []) if k not in value]
        if schema.get("additionalProperties") is False:
            errors += [f"{path}: extra {k}" for k in value if k not in props]
        for k, sub in props.items():
            if k in value:
                errors += validate(value[k], sub, f"{path}.{k}")
        return errors
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: not a string"]
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: longer than {schema['maxLength']}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{path}: not a number"]
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > {schema['maximum']}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in enum")
    return errors


def post(url, body, timeout=600):
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)


def one(args, i, form):
    messages = [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": USER.format(
                i=1000 + i,
                tier=TIERS[i % 4],
                qty=1 + i % 3,
                product=PRODUCTS[i % 5],
                price=f"{19.99 + 17 * i:.2f}",
                views=2 + i % 4,
            ),
        },
    ]
    body = {
        "model": args.model,
        "messages": messages,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
    }
    if form == "guided_json":
        body.update(guided_json=SCHEMA, guided_decoding_backend="xgrammar")
    else:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "offer", "schema": SCHEMA, "strict": True},
        }
    t0 = time.monotonic()
    out = post(f"{args.url}/chat/completions", body)
    latency = time.monotonic() - t0
    choice = out["choices"][0]
    text = choice["message"]["content"] or ""
    try:
        errors = validate(json.loads(text), SCHEMA)
    except ValueError as exc:
        errors = [f"not JSON: {exc}"]
    return {
        "i": i,
        "latency": latency,
        "tokens": out["usage"]["completion_tokens"],
        "finish": choice["finish_reason"],
        "errors": errors,
        "text": text,
    }


def run(args, label, n, form, concurrent):
    results = [None] * n
    t0 = time.monotonic()
    if concurrent:

        def work(i):
            results[i] = one(args, i, form)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for i in range(n):
            results[i] = one(args, i, form)
    wall = time.monotonic() - t0
    print(f"== {label}: {n} requests, {'concurrent' if concurrent else 'sequential'}", flush=True)
    for r in results:
        ok = "valid" if not r["errors"] else "INVALID " + "; ".join(r["errors"])[:120]
        print(
            f"  {r['i']:2d} {r['latency']:6.1f}s {r['tokens']:4d} tok {r['tokens'] / r['latency']:5.1f} tok/s "
            f"{r['finish']:6s} {ok}"
        )
        if args.show:
            print(f"     {r['text'][:400]}")
    tokens = sum(r["tokens"] for r in results)
    valid = sum(not r["errors"] for r in results)
    lat = sorted(r["latency"] for r in results)
    print(
        f"  total: wall {wall:.1f}s, {tokens} tokens, {tokens / wall:.1f} tok/s aggregate, "
        f"latency median {lat[len(lat) // 2]:.1f}s max {lat[-1]:.1f}s, "
        f"{tokens / n:.0f} tok/answer, {valid}/{n} schema-valid",
        flush=True,
    )
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    envfile = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sgr/run/vllm.env"
    env = {}
    if envfile.is_file():
        env = dict(line.split("=", 1) for line in envfile.read_text().split() if "=" in line)
    ap.add_argument("--url", default=os.environ.get("VLLM_BASE_URL") or env.get("VLLM_BASE_URL"))
    ap.add_argument("--model", default=os.environ.get("VLLM_MODEL") or env.get("VLLM_MODEL"))
    ap.add_argument("--sequential", type=int, default=4)
    ap.add_argument("--concurrent", type=int, default=8)
    ap.add_argument("--guided-json", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=400)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--show", action="store_true", help="print each answer's text")
    args = ap.parse_args()
    if not args.url:
        sys.exit("no --url and no VLLM_BASE_URL (start the server with serve.sh --background)")
    args.url = args.url.rstrip("/")
    if not args.model:
        with urllib.request.urlopen(f"{args.url}/models", timeout=10) as resp:
            args.model = json.load(resp)["data"][0]["id"]
    print(
        f"server {args.url}, model {args.model}, max_tokens {args.max_tokens}, T={args.temperature}"
    )
    if args.sequential:
        run(args, "json_schema, one stream", args.sequential, "json_schema", False)
    if args.concurrent:
        run(args, f"json_schema, {args.concurrent} at once", args.concurrent, "json_schema", True)
    if args.guided_json:
        run(args, "guided_json (removed form)", args.guided_json, "guided_json", False)


if __name__ == "__main__":
    main()
