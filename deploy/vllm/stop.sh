#!/usr/bin/env bash
# Stop a vLLM server started by serve.sh (by its pidfile): SIGTERM its process group, wait up to
# VLLM_STOP_TIMEOUT (30 s), then SIGKILL. Exits 0 if nothing was running.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/common.sh"

if [[ ! -f "$PIDFILE" ]]; then log "not running (no pidfile $PIDFILE)"; exit 0; fi
PID="$(cat "$PIDFILE")"
if kill -0 "$PID" 2>/dev/null || kill -0 -- "-$PID" 2>/dev/null; then
  log "stopping vLLM (pid $PID)"
  stop_group "$PID" "${VLLM_STOP_TIMEOUT:-30}"
  log "stopped"
else
  log "not running (stale pidfile for pid $PID)"
fi
rm -f "$PIDFILE" "$ENVFILE"
