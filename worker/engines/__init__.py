"""Engines that write an offer: ``base`` (the interface, request, reply, error and breaker), one
file per engine (``vllm``, ``policy``), the choice among them in ``select``, and the prompts and
answer schemas beside them. Import the module you need (``worker.engines.vllm`` loads the OpenAI
client only when it is used)."""
