# Shared settings for serve.sh and stop.sh (sourced, not run).
SGR_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/sgr"
VENV="${SGR_VLLM_VENV:-$SGR_CACHE/vllm-venv}"
RUN_DIR="${SGR_VLLM_RUN_DIR:-$SGR_CACHE/run}"
PIDFILE="${VLLM_PIDFILE:-$RUN_DIR/vllm.pid}"
LOGFILE="${VLLM_LOGFILE:-$RUN_DIR/vllm.log}"
ENVFILE="${PIDFILE%.pid}.env"

log() { echo "[vllm] $*" >&2; }

# stop_group PID [TIMEOUT]: SIGTERM the API server (vLLM then shuts its engine processes down
# itself), wait for its whole process group to go, then SIGKILL whatever is left.
stop_group() {
  local pid="$1" timeout="${2:-30}" i
  kill -TERM "$pid" 2>/dev/null || kill -TERM -- "-$pid" 2>/dev/null || return 0
  for ((i = 0; i < timeout * 10; i++)); do
    kill -0 -- "-$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "process group $pid still alive after ${timeout}s: SIGKILL"
  kill -KILL -- "-$pid" 2>/dev/null || true
}
