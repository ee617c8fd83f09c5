"""Store failures are transient until proven otherwise: on a real PostgreSQL, a connection the
server closed is replaced before use, one closed mid-transaction is ``StoreTransient`` (not a raw
driver error, not one event's failure), a server that refuses the settings for good is
``StoreUnavailable``; ``retry_store`` waits out the first kind only."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stores.base import StoreTransient, StoreUnavailable
from stores.hot import open_hot_store
from testbench.pgproc import database_url, terminate_backends
from worker.jobs import retry_store


def test_a_pooled_connection_closed_by_the_server_is_replaced_before_use(
    pg_database: str, tmp_path: Path
) -> None:
    store = open_hot_store(pg_database, tmp_path / "unused.sqlite")
    try:
        assert store.get_outcome("e1") is None
        assert terminate_backends(pg_database) >= 1  # the pool's idle connection, closed
        assert store.get_outcome("e1") is None  # no error: checked, replaced
    finally:
        store.close()


def test_a_connection_closed_mid_transaction_is_transient(pg_database: str, tmp_path: Path) -> None:
    store = open_hot_store(pg_database, tmp_path / "unused.sqlite")
    try:
        with pytest.raises(StoreTransient), store.transaction():
            store.lock_customer("u1")
            terminate_backends(pg_database)
            store.get_outcome("e1")
        assert store.get_outcome("e1") is None  # and the store works again at once
    finally:
        store.close()


def test_a_server_that_refuses_for_good_is_not_transient(postgres_url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable) as refused:
        open_hot_store(database_url(postgres_url, "sgr_no_such_db"), tmp_path / "x.sqlite")
    assert not isinstance(refused.value, StoreTransient)
    with pytest.raises(StoreTransient):  # nothing listens there: it may come up
        open_hot_store("postgresql://sgr@127.0.0.1:1/sgr", tmp_path / "x.sqlite")


def test_retry_store_waits_out_transient_failures_only() -> None:
    calls: list[float] = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise StoreTransient("hot store: connection closed")
        return "done"

    assert retry_store(flaky, 10) == "done" and len(calls) == 3

    def fatal() -> None:
        calls.append(time.monotonic())
        raise StoreUnavailable("hot store: read-only")

    calls.clear()
    with pytest.raises(StoreUnavailable):
        retry_store(fatal, 10)
    assert len(calls) == 1  # not retried

    def never() -> None:
        raise StoreTransient("hot store: down")

    started = time.monotonic()
    with pytest.raises(StoreTransient):
        retry_store(never, 0.5)
    assert time.monotonic() - started < 5  # gives up after its limit, raising the last error
