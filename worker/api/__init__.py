"""The HTTP API (``sgr api``): the shop's way in over HTTP, on the same settings, stores, queue
and runner as the workers (wired in ``worker/runtime.py``). One idea per module; docs/api.md."""
