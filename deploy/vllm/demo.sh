#!/usr/bin/env bash
# `make demo`: the demo with offers written by a real model (SmolLM2-135M-Instruct on the CPU).
#   demo.sh [sgr demo options...]
# If SGR_LLM_URL answers /v1/models, it is used as it is. Otherwise a vLLM server of the demo's own
# is installed and started (first run: minutes, for the install and the model build; a progress
# line shows what it is doing), the demo runs against it, and the server is stopped at the end.
# When no server can be had, the demo runs on the rules engine and says why, in plain words.
# The demo runs on a redis-server of its own (never SGR_REDIS_URL's); `--redis-url URL` names another.
# Env: DEMO_LLM=0 skips the model (rules engine); DEMO_LLM_SESSIONS (30: a 135M model on two
# cores writes about one offer every few seconds); SGR_VLLM_RUN_DIR, VLLM_START_TIMEOUT.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/common.sh"
read -r -a SGR <<<"${UV:-uv} run sgr"
# A 135M model on two cores takes 10-30 s an answer (more on a busy machine): room for that.
export SGR_LLM_TIMEOUT_S="${SGR_LLM_TIMEOUT_S:-90}" SGR_LLM_RETRIES="${SGR_LLM_RETRIES:-1}"
export SGR_JOB_TIMEOUT_S="${SGR_JOB_TIMEOUT_S:-300}"
SESSIONS="${DEMO_LLM_SESSIONS:-30}"
ARGS=("$@")
say() { echo "[demo] $*" >&2; }

answers() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1].rstrip("/") + "/models", timeout=2)' "$1" 2>/dev/null; }

fallback() {
  say "falling back to the rules engine: $1"
  say "offers below are written by the rules engine (engine \"policy\"), not by a model"
  exec "${SGR[@]}" demo --engine policy "${ARGS[@]}"
}

if [[ "${DEMO_LLM:-1}" == 0 ]]; then fallback "DEMO_LLM=0"; fi
if [[ -n "${SGR_LLM_URL:-}" ]] && answers "$SGR_LLM_URL"; then
  say "using the LLM server at SGR_LLM_URL"
  exec "${SGR[@]}" demo --llm-url "$SGR_LLM_URL" --sessions "$SESSIONS" "${ARGS[@]}"
fi
if [[ "$(uname -s)" != Linux ]] || ! grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
  fallback "vLLM's CPU build needs Linux on an x86 CPU with AVX2, and this machine is not one"
fi

RUN="$RUN_DIR/demo"
mkdir -p "$RUN"
export VLLM_PIDFILE="$RUN/vllm.pid" VLLM_LOGFILE="$RUN/vllm.log" PORT=0
OUT="$RUN/serve.out"
trap 'bash "$HERE/stop.sh" >/dev/null 2>&1' EXIT
say "starting a vLLM server with SmolLM2-135M-Instruct (first run: install ~2-4 min + model build ~1 min; then ~30 s start-up)"
bash "$HERE/serve.sh" --background >"$OUT" 2>&1 &
SERVE=$!
started=$SECONDS
phase_of() {  # what the server's start is doing now, in words (from serve.sh's own lines)
  local last
  last="$(grep -o '^\[[a-z0-9-]*\]' "$OUT" 2>/dev/null | tail -n 1)"
  case "$last" in
    "[vllm-install]") echo "installing vLLM into its own venv (first run only)" ;;
    "[smollm2]") echo "building the SmolLM2-135M model folder (first run only)" ;;
    "[vllm]") echo "vLLM loading the model" ;;
    *) echo "preparing" ;;
  esac
}
shown=""
while kill -0 "$SERVE" 2>/dev/null; do
  phase="$(phase_of)"
  if [[ -t 2 ]]; then printf '\r[demo] %4d s  %-64s' "$((SECONDS - started))" "$phase" >&2
  elif [[ "$phase" != "$shown" ]] || ((SECONDS % 30 == 0)); then
    say "$((SECONDS - started)) s: $phase"
    shown="$phase"
  fi
  sleep 1
done
[[ -t 2 ]] && echo >&2
if ! wait "$SERVE"; then
  tail -n 5 "$OUT" >&2
  fallback "the vLLM server did not start (see $OUT and $VLLM_LOGFILE)"
fi
URL="$(sed -n 's/^vLLM listening on //p' "$OUT")"
say "vLLM ready after $((SECONDS - started)) s at $URL; the demo runs $SESSIONS sessions against it"
"${SGR[@]}" demo --llm-url "$URL" --sessions "$SESSIONS" "${ARGS[@]}"
