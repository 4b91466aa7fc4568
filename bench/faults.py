"""Uploads and reads through PostgreSQL restarts and a freeze: is anything lost, and
how does the API answer while the database is away?

Starts a PostgreSQL cluster of its own (``tests/support/cluster.py``: initdb/pg_ctl of
PostgreSQL 15, never the shared server), migrates a database, and serves the API with
a real uvicorn (rate limits off). Client threads upload distinct tickets and read
lists and tickets without pause while the script restarts PostgreSQL 3 times
(``pg_ctl stop -m fast``, down ``--down`` seconds, start) and then freezes it
(SIGSTOP to the postmaster and every backend) for ``--freeze`` seconds. Then it prints:

- acknowledged uploads (201/200) and how many of them are present afterwards (goal: all);
- every error by status and content type, and transport errors by kind
  (goal: only 503 application/problem+json);
- the longest request that overlapped the freeze (goal: under 2 s);
- time to recover: from each restart's end, and from the thaw, to the first 2xx.

    python bench/faults.py [--quick] [--uploaders 3] [--readers 3] [--freeze 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# Run as a script (`python bench/faults.py`), sys.path[0] is bench/; make the repo importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db.migrate import upgrade  # noqa: E402
from db.session import make_engine, make_sessionmaker, unit_of_work  # noqa: E402
from db.tokens import create_token  # noqa: E402
from tests.support import cluster as pg_cluster  # noqa: E402
from tests.support import postgres  # noqa: E402
from tests.support.processes import free_port, running, service_env, wait_until_healthy  # noqa: E402
from tests.support.tickets import make_ticket  # noqa: E402


@dataclass
class Record:
    started: float
    seconds: float
    kind: str  # "upload" | "read"
    status: int | None  # None: a transport error
    content_type: str = ""
    error: str = ""


@dataclass
class Log:
    records: list[Record] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: Record, ticket_id: str | None = None) -> None:
        with self.lock:
            self.records.append(record)
            if ticket_id:
                self.acknowledged.append(ticket_id)


def _timed(log: Log, kind: str, send: Callable[[], httpx.Response]) -> httpx.Response | None:
    started = time.monotonic()
    try:
        response = send()
    except httpx.TransportError as exc:
        log.add(Record(started, time.monotonic() - started, kind, None, error=type(exc).__name__))
        return None
    record = Record(started, time.monotonic() - started, kind, response.status_code,
                    response.headers.get("content-type", "").split(";")[0])  # fmt: skip
    ticket_id = None
    if kind == "upload" and response.status_code in (200, 201):
        ticket_id = response.json()["id"]
    log.add(record, ticket_id)
    return response


def uploader(url: str, token: str, payloads: list[dict[str, tuple[str, bytes, str]]], log: Log, stop: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=60) as client:
        for files in payloads:
            if stop.is_set():
                return
            _timed(log, "upload", lambda: client.post("/api/v1/tickets", files=files, headers=headers))


def reader(url: str, log: Log, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        while not stop.is_set():
            page = _timed(log, "read", lambda: client.get("/api/v1/tickets", params={"limit": 20}))
            if page is not None and page.status_code == 200 and page.json()["items"]:
                first = page.json()["items"][0]["id"]
                _timed(log, "read", lambda: client.get(f"/api/v1/tickets/{first}"))


def first_success_after(log: Log, moment: float) -> float | None:
    with log.lock:
        ends = [r.started + r.seconds for r in log.records
                if r.status is not None and r.status < 300 and r.started >= moment]  # fmt: skip
    return min(ends) - moment if ends else None


def run(args: argparse.Namespace) -> int:
    print(f"generating {args.tickets} distinct tickets ...", flush=True)
    payloads = [make_ticket(mask_seed=i, seed=i % 7).multipart() for i in range(args.tickets)]
    with pg_cluster.running_cluster() as cluster, tempfile.TemporaryDirectory(prefix="nirvana-faults-") as tmp:
        database_url = postgres.create_database(cluster.url, "nirvana_faults")
        engine = make_engine(database_url)
        upgrade(engine)
        with unit_of_work(make_sessionmaker(engine)) as session:
            _, token = create_token(session, user_name="bench", token_name="faults", scopes=("read", "write"))
        engine.dispose()
        env = service_env(database_url, Path(tmp) / "blobs", NIRVANA_RATE_LIMIT_API_PER_MINUTE="0",
                          NIRVANA_RATE_LIMIT_DOWNLOADS_PER_MINUTE="0")  # fmt: skip
        port = free_port()
        command = ["-m", "uvicorn", "api.main:app_from_env", "--factory", "--host", "127.0.0.1", "--port", str(port)]
        with running(command, env, Path(tmp) / "api.log") as process:
            url = f"http://127.0.0.1:{port}"
            wait_until_healthy(url, process, Path(tmp) / "api.log", timeout=180)
            return _drive(args, cluster, url, token, payloads)


def _drive(args: argparse.Namespace, cluster: pg_cluster.Cluster, url: str, token: str,
           payloads: list[dict[str, tuple[str, bytes, str]]]) -> int:  # fmt: skip
    log, stop = Log(), threading.Event()
    share = [payloads[i :: args.uploaders] for i in range(args.uploaders)]
    threads = [threading.Thread(target=uploader, args=(url, token, part, log, stop)) for part in share]
    threads += [threading.Thread(target=reader, args=(url, log, stop)) for _ in range(args.readers)]
    for thread in threads:
        thread.start()
    recovered: list[tuple[str, float]] = []
    time.sleep(args.gap)
    for index in range(args.restarts):
        cluster.restart(down_seconds=args.down)
        recovered.append((f"restart {index + 1}", time.monotonic()))
        print(f"restart {index + 1} done", flush=True)
        time.sleep(args.gap)
    frozen_at = time.monotonic()
    cluster.freeze()
    print(f"frozen for {args.freeze:.0f} s", flush=True)
    time.sleep(args.freeze)
    cluster.thaw()
    thawed_at = time.monotonic()
    recovered.append(("thaw", thawed_at))
    time.sleep(args.gap)
    stop.set()
    for thread in threads:
        thread.join()
    return _report(log, url, frozen_at, thawed_at, recovered)


def _report(log: Log, url: str, frozen_at: float, thawed_at: float, recovered: list[tuple[str, float]]) -> int:
    with httpx.Client(base_url=url, timeout=60) as client:
        present = sum(client.get(f"/api/v1/tickets/{tid}").status_code == 200 for tid in log.acknowledged)
    records = log.records
    ok = sum(1 for r in records if r.status is not None and r.status < 300)
    print(f"\nrequests: {len(records)} ({ok} 2xx); uploads acknowledged: {len(log.acknowledged)}, "
          f"present afterwards: {present}")  # fmt: skip
    for kind in ("upload", "read"):
        mine = [r for r in records if r.kind == kind]
        print(f"  {kind}s: {len(mine)}, answered {dict(Counter(str(r.status) for r in mine))}")
    errors = Counter(f"{r.status} {r.content_type}" for r in records if r.status is not None and r.status >= 300)
    transport = Counter(r.error for r in records if r.status is None)
    print("errors by status and content type:", dict(errors) or "none")
    print("transport errors:", dict(transport) or "none")
    during = [r for r in records if r.started < thawed_at and r.started + r.seconds > frozen_at]
    longest = max((r.seconds for r in during), default=0.0)
    answered = Counter(str(r.status) for r in during)
    print(f"during the freeze: {len(during)} requests {dict(answered)}, longest {longest:.2f} s")
    for name, moment in recovered:
        took = first_success_after(log, moment)
        print(f"recovered after {name}: " + (f"{took:.2f} s" if took is not None else "never"))
    lost = len(log.acknowledged) - present
    only_503 = set(errors) <= {"503 application/problem+json"} and not transport
    print(f"\nlost uploads: {lost}; only 503 problem+json: {only_503}; longest during freeze < 2 s: {longest < 2}")
    return 0 if lost == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 3-s freeze, shorter gaps, fewer tickets")
    parser.add_argument("--uploaders", type=int, default=3)
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--down", type=float, default=1.0, help="seconds PostgreSQL stays down per restart")
    parser.add_argument("--freeze", type=float, default=10.0, help="seconds PostgreSQL stays frozen")
    parser.add_argument("--gap", type=float, default=4.0, help="seconds of normal service between faults")
    parser.add_argument("--tickets", type=int, default=3000, help="distinct tickets the uploaders may send")
    args = parser.parse_args()
    if args.quick:
        args.freeze, args.gap, args.down, args.tickets = 3.0, 2.0, 0.5, 800
    if not pg_cluster.available():
        print(f"needs PostgreSQL's initdb and pg_ctl in {pg_cluster.BIN}", file=sys.stderr)
        return 2
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
