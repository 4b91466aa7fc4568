"""The engine's timeouts and the liveness monitor, against a PostgreSQL cluster of the
test's own (it freezes it with SIGSTOP)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from db.liveness import DatabaseMonitor, DatabaseUnavailableError, probe, server_address
from db.session import make_engine
from tests.support import cluster as pg_cluster

pytestmark = pytest.mark.skipif(not pg_cluster.available(), reason="needs PostgreSQL 15's initdb and pg_ctl")


@pytest.fixture
def own_cluster() -> Iterator[pg_cluster.Cluster]:
    with pg_cluster.running_cluster() as cluster:
        yield cluster


def test_a_statement_over_the_statement_timeout_is_cancelled_by_the_server(pg_server_url: str) -> None:
    engine = make_engine(pg_server_url, statement_timeout=0.2)
    try:
        with engine.connect() as connection, pytest.raises(OperationalError) as raised:
            connection.execute(text("SELECT pg_sleep(5)"))
        assert isinstance(raised.value.orig, psycopg.errors.QueryCanceled)
    finally:
        engine.dispose()


def test_the_probe_tells_a_running_server_from_a_stopped_and_a_frozen_one(own_cluster: pg_cluster.Cluster) -> None:
    address = server_address(make_engine(own_cluster.url).url)
    assert address is not None and probe(address, timeout=5)
    own_cluster.freeze()
    try:
        assert not probe(address, timeout=0.5)
    finally:
        own_cluster.thaw()
    assert probe(address, timeout=5)
    own_cluster.stop()
    assert not probe(address, timeout=5)


def _monitored(url: str) -> tuple[Engine, DatabaseMonitor]:
    engine = make_engine(url)
    return engine, DatabaseMonitor(engine, interval=0.1, probe_timeout=0.5).start()


def test_a_statement_blocked_on_a_frozen_server_is_cut_and_new_connections_are_refused_at_once(
    own_cluster: pg_cluster.Cluster,
) -> None:
    engine, monitor = _monitored(own_cluster.url)
    outcome: list[BaseException | None] = []
    try:
        with engine.connect() as held:
            held.execute(text("SELECT 1"))
            own_cluster.freeze()

            def blocked() -> None:
                try:
                    held.execute(text("SELECT 2"))
                    outcome.append(None)
                except BaseException as exc:  # what the blocked caller gets
                    outcome.append(exc)

            thread = threading.Thread(target=blocked)
            thread.start()
            thread.join(timeout=30)  # without the monitor it waits for the thaw
            assert not thread.is_alive() and isinstance(outcome[0], DBAPIError)
        assert not monitor.available
        with pytest.raises(DBAPIError) as refused:
            engine.connect()
        assert isinstance(refused.value.orig, DatabaseUnavailableError)
    finally:
        own_cluster.thaw()
    try:
        for _ in range(100):
            if monitor.available:
                break
            threading.Event().wait(0.1)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 3")).scalar_one() == 3
    finally:
        monitor.stop()
        engine.dispose()
