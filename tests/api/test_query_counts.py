"""Hot endpoints issue a fixed number of queries, however many rows they return."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from api.tickets import TicketCounts
from tests.support.tickets import make_ticket


@contextmanager
def count_queries(session: Session) -> Iterator[list[str]]:
    statements: list[str] = []
    connection = session.connection()

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", record)


def _select_count(statements: list[str]) -> int:
    return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT"))


def test_listing_costs_one_query_whatever_the_page_size(
    client: TestClient, auth: dict[str, str], db_session: Session
) -> None:
    for seed in range(6):
        client.post("/api/v1/tickets", files=make_ticket(mask_seed=seed).multipart(), headers=auth)
    counts = []
    for limit in (1, 6):
        with count_queries(db_session) as statements:
            assert len(client.get("/api/v1/tickets", params={"limit": limit}).json()["items"]) == limit
        counts.append(_select_count(statements))
    assert counts == [1, 1]


def test_ticket_detail_loads_its_submitter_and_verifications_in_two_queries(
    client: TestClient, auth: dict[str, str], db_session: Session
) -> None:
    ticket = client.post("/api/v1/tickets", files=make_ticket().multipart(), headers=auth).json()
    db_session.expunge_all()  # a cold identity map, as in a fresh request
    with count_queries(db_session) as statements:
        body = client.get(f"/api/v1/tickets/{ticket['short_id']}").json()
    assert body["submitter"] == "alice" and len(body["verifications"]) == 1
    assert _select_count(statements) == 2


def test_a_list_page_reads_only_the_columns_it_shows(client: TestClient, auth: dict[str, str], db_session: Session) -> None:
    client.post("/api/v1/tickets", files=make_ticket().multipart(), headers=auth)
    with count_queries(db_session) as statements:
        assert len(client.get("/api/v1/tickets", params={"task": "digits"}).json()["items"]) == 1
    [listing] = statements
    for column in ("manifest", "recipe", "layers", "description"):
        assert f"tickets.{column}" not in listing


def test_task_counts_are_counted_once_per_interval(db_session: Session) -> None:
    now = [0.0]
    counts = TicketCounts(ttl=10, clock=lambda: now[0])
    with count_queries(db_session) as statements:
        counts.get(db_session)
        now[0] = 9.9
        counts.get(db_session)
    assert len(statements) == 1
    now[0] = 10.0
    with count_queries(db_session) as statements:
        counts.get(db_session)
    assert len(statements) == 1
