"""Migration 5c1e7d9a2b04 (verdicts) on a database holding schema-1 results: every row
stays, tickets get their verdict and dense accuracy, results are marked schema 1, and
the API still serves them; downgrading removes only what it added."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.settings import ApiSettings
from db.migrate import downgrade, upgrade
from db.session import make_engine
from tests.support import postgres

BEFORE = "ba23a6819b97"
HEX = "0123456789abcdef" * 4


def _old_result(reproduced: bool, winning: bool, ticket: float, dense: float) -> str:
    runs = {name: {"test_accuracy": acc, "curve": [[0, 0.1], [60, acc]], "density": 0.5, "seconds": 1.0}
            for name, acc in (("ticket", ticket), ("reinit", 0.5), ("random_mask", 0.5), ("dense", dense))}  # fmt: skip
    return json.dumps({"runs": runs, "reproduced": reproduced, "winning": winning, "tolerance": 0.02,
                       "claimed_accuracy": ticket, "device": "cpu", "torch_version": "old",
                       "dataset_fingerprint": "x", "task": "digits", "recipe": {}})  # fmt: skip


def _insert_old_rows(connection) -> dict[str, str]:  # type: ignore[no-untyped-def]
    user = connection.execute(text("INSERT INTO users (name) VALUES ('old') RETURNING id")).scalar()
    connection.execute(text("INSERT INTO blobs (sha256, size, media_type) VALUES (:h, 1, 'x')"), {"h": HEX})
    ids = {}
    rows = [  # name, verified, winning, verified_accuracy, result
        ("winning", True, True, 0.93, _old_result(True, True, 0.93, 0.94)),
        ("not_winning", True, False, 0.90, _old_result(True, False, 0.90, 0.94)),
        ("refuted", False, False, 0.101, _old_result(False, False, 0.101, 0.94)),
        ("pending", False, None, None, None),
    ]
    for i, (name, verified, winning, accuracy, result) in enumerate(rows):
        tid = f"{i:x}" * 64
        ids[name] = tid
        connection.execute(text(
            "INSERT INTO tickets (id, architecture, task, init_scheme, rewind_step, init_digest, mask_digest,"
            " mask_sha256, init_sha256, manifest, recipe, claimed_accuracy, method, title, license, density,"
            " remaining, prunable, layers, accuracy, verified, verified_accuracy, winning, submitter_id)"
            " VALUES (:id, 'lenet_32_16', 'digits', 'kaiming_normal', 0, :h, :h, :h, :h, '{}', '{}', 0.9, 'imp',"
            " :title, 'MIT', 0.5, 10, 20, '{}', :acc, :verified, :vacc, :winning, :user)"
        ), {"id": tid, "h": HEX, "title": name, "acc": accuracy or 0.9, "verified": verified, "vacc": accuracy,
            "winning": winning, "user": user})  # fmt: skip
        connection.execute(text(
            "INSERT INTO verifications (ticket_id, task, recipe, claimed_accuracy, state, result)"
            " VALUES (:id, 'digits', '{}', 0.9, :state, CAST(:result AS jsonb))"
        ), {"id": tid, "state": "succeeded" if result else "queued", "result": result})  # fmt: skip
    return ids


def test_upgrade_keeps_schema_1_results_and_serves_them(pg_server_url: str, tmp_path: Path) -> None:
    url = postgres.create_database(pg_server_url, "nirvana_verdicts")
    engine = make_engine(url)
    try:
        upgrade(engine, BEFORE)
        with engine.begin() as connection:
            ids = _insert_old_rows(connection)
        upgrade(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM tickets")).scalar() == 4
            assert connection.execute(text("SELECT count(*) FROM verifications")).scalar() == 4
            rows = connection.execute(text("SELECT title, verdict, dense_accuracy FROM tickets")).all()
            schemas = connection.execute(text("SELECT result->>'schema' FROM verifications WHERE result IS NOT NULL")).scalars().all()
        assert {r.title: r.verdict for r in rows} == {"winning": "winning", "not_winning": "not_winning",
                                                      "refuted": "not_reproduced", "pending": None}  # fmt: skip
        assert {r.title: r.dense_accuracy for r in rows} == {"winning": 0.94, "not_winning": 0.94, "refuted": 0.94,
                                                             "pending": None}  # fmt: skip
        assert schemas == ["1", "1", "1"]

        settings = ApiSettings(database_url=url, blob_dir=tmp_path / "blobs", max_upload_bytes=2_000_000, max_steps=5_000)
        with TestClient(create_app(settings)) as client:
            refuted = client.get(f"/api/v1/tickets/{ids['refuted']}").json()
            assert refuted["verdict"] == "not_reproduced"
            result = refuted["verifications"][0]["result"]
            assert result["schema"] == 1 and result["runs"]["ticket"]["test_accuracy"] == 0.101
            assert client.get(f"/api/v1/tickets/{ids['pending']}").json()["verdict"] is None
            ranked = [t["title"] for t in client.get("/api/v1/tickets", params={"sort": "rank"}).json()["items"]]
            assert ranked == ["winning", "not_winning", "pending", "refuted"]
            page = client.get(f"/tickets/{ids['refuted']}").text
            assert "not reproduced" in page and "result schema 1" in page

        downgrade(engine, BEFORE)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM tickets")).scalar() == 4
            left = connection.execute(text("SELECT count(*) FROM verifications WHERE result ? 'schema'")).scalar()
            assert left == 0
    finally:
        engine.dispose()
        postgres.drop_database(pg_server_url, url)
