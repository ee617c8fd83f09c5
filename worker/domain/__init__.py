"""The pure domain: the event contract, the rules and the typed values the rest passes around.

Nothing here imports Redis, SQL, DuckDB, HTTP, RQ or the CLI (``make lint`` checks it with
import-linter): stores and engines import the domain, never the other way round.
"""
