"""Reads under load: the API against its own database and against nginx, in one run.

Seeds a scratch database with 100,000 tickets (a few real uploads, cloned with other
densities, accuracies, ages and verdicts, one verification each), then measures with
wrk, at 1, 10 and 50 clients:

- the list (plain, filtered by task, the filtered list's second page) through
  ``nirvana api`` against pgbench running the very SQL the API issued for that page,
  captured from PostgreSQL's own log (``log_statement`` on a role only the capture
  uses), not rewritten by hand; the repeated page is answered from the API's read
  cache (``api.readcache``), so the plain list is also measured on a second API with
  the cache off (``NIRVANA_READ_CACHE_MB=0``), every request running its query;
- a ticket's detail the same way (also with the cache off);
- a conv4 mask (2.4 MB) through the API's own streaming path, and through nginx in
  front of the API (deploy/nginx.conf: ``X-Accel-Redirect``, and downloads by full id
  kept in nginx's cache after the first), against Debian's nginx serving the same
  file from disk.

Prints one row per measurement with the ratio to its baseline. Needs PostgreSQL on
127.0.0.1:5432 (or BENCH_PG_URL), a readable server log (BENCH_PG_LOG), wrk, pgbench and
nginx.

    PYTHONPATH=. python bench/api_load.py            # 100,000 tickets, 10 s a measurement
    PYTHONPATH=. python bench/api_load.py --quick    # 2,000 tickets, 2 s, 1 and 10 clients
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg

from bench.load_common import (
    SERVER_URL, Load, clone_tickets, make_token, nginx, nirvana, pgbench, scratch_database, ticket_files, with_database, wrk,
)  # fmt: skip

PG_LOG = Path(os.environ.get("BENCH_PG_LOG", "/var/log/postgresql/postgresql-15-main.log"))
TEMPLATES = [("conv4", "cifar10"), ("lenet_300_100", "fashion-mnist"), ("lenet_300_100", "mnist"), ("conv2", "cifar10")]
# Also measured with NIRVANA_READ_CACHE_MB=0: what a read costs when it runs its query.
UNCACHED_TOO = ("list", "detail")
_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \w+ \[(\d+)\] ")
_PARAM = re.compile(r"\$(\d+) = ('(?:[^']|'')*'|NULL)")


def captured_sql(role: str, url: str, path: str) -> list[str]:
    """The statements PostgreSQL logged for ``role`` while the API answered ``path``,
    with their parameters written in as literals."""
    offset = PG_LOG.stat().st_size
    assert httpx.get(url + path, timeout=30).status_code == 200, path
    time.sleep(0.5)  # the server writes its log asynchronously
    with PG_LOG.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    statements: list[str] = []
    marker = f" {role}@"
    for index, line in enumerate(lines):
        match = re.search(r"LOG:  (?:execute [^:]*|statement): (.*)$", line)
        if marker not in line or not match:
            continue
        sql = [match.group(1)]
        rest = lines[index + 1 :]
        while rest and not _LINE.match(rest[0]):
            sql.append(rest.pop(0))
        text = "\n".join(sql)
        if rest and marker in rest[0] and "DETAIL:  parameters:" in rest[0]:
            params = dict(_PARAM.findall(rest[0]))
            for number in sorted(params, key=int, reverse=True):
                text = text.replace(f"${number}", params[number])
        if text.strip().upper() not in ("SELECT 1", "BEGIN", "COMMIT", "ROLLBACK", ";", ""):
            statements.append(text.rstrip().rstrip(";") + ";")
    assert statements, f"nothing captured for {path}; is {PG_LOG} the server's log?"
    return statements


def row(name: str, clients: int, api: Load, baseline_name: str, baseline: float) -> str:
    ratio = api.rps / baseline if baseline else float("nan")
    return (f"| {name} | {clients} | {api.rps:,.0f} | {api.p50_ms:.1f} | {api.p99_ms:.1f} | {api.errors} "
            f"| {baseline_name} | {baseline:,.0f} | {ratio:.2f}x |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 tickets, 2-s measurements, 1 and 10 clients")
    parser.add_argument("--tickets", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    tickets = args.tickets or (2_000 if args.quick else 100_000)
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    clients = (1, 10) if args.quick else (1, 10, 50)
    role = f"nirvana_bench_capture_{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="nirvana-api-load-"))
    blobs = tmp / "blobs"
    env = {"NIRVANA_BLOB_DIR": str(blobs), "NIRVANA_HOME": str(tmp / "home"),
           "NIRVANA_RATE_LIMIT_API_PER_MINUTE": "0", "NIRVANA_RATE_LIMIT_DOWNLOADS_PER_MINUTE": "0"}  # fmt: skip
    with scratch_database() as url, ExitStack() as stack:
        with psycopg.connect(SERVER_URL, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
            conn.execute(f"ALTER ROLE \"{role}\" SET log_statement = 'all'")
        stack.callback(_drop_role, role)
        token = make_token(url)
        print(f"seeding {tickets:,} tickets ...", flush=True)
        api = stack.enter_context(nirvana(["api"], {**env, "DATABASE_URL": url}, tmp / "api.log"))
        uploaded = []
        for index, (architecture, task) in enumerate(TEMPLATES * 2):
            files = ticket_files(architecture, task, density=0.2 / (1 + index), mask_seed=index)
            answer = httpx.post(f"{api.url}/api/v1/tickets", files=files, headers={"Authorization": f"Bearer {token}"}, timeout=300)
            assert answer.status_code == 201, answer.text
            uploaded.append(answer.json())
        clone_tickets(url, tickets - len(uploaded), len(uploaded))
        capture = stack.enter_context(nirvana(["api"], {**env, "DATABASE_URL": with_database(url, url.rsplit("/", 1)[1], role)}, tmp / "capture.log"))
        uncached = stack.enter_context(nirvana(["api"], {**env, "DATABASE_URL": url, "NIRVANA_READ_CACHE_MB": "0"}, tmp / "uncached.log"))
        accel = stack.enter_context(nirvana(["api"], {**env, "DATABASE_URL": url, "NIRVANA_ACCEL_REDIRECT_PREFIX": "/_blobs/"}, tmp / "accel.log"))
        static, front = stack.enter_context(nginx(blobs, accel.url))
        assert front is not None

        filtered = "/api/v1/tickets?task=cifar10&limit=50"
        cursor = httpx.get(api.url + filtered, timeout=30).json()["next_cursor"]
        detail = f"/api/v1/tickets/{uploaded[0]['id']}"
        reads = [("list", "/api/v1/tickets?limit=50"), ("list task=cifar10, -sparsity", "/api/v1/tickets?task=cifar10&sort=-sparsity&limit=50"),
                 ("list task=cifar10, -created, page 2", f"{filtered}&cursor={cursor}"), ("detail", detail)]  # fmt: skip
        print(f"\n{tickets:,} tickets, {seconds:g} s a measurement\n")
        print("| measurement | clients | API req/s | p50 ms | p99 ms | errors | baseline | baseline req/s | ratio |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, path in reads:
            script = "\n".join(captured_sql(role, capture.url, path)) + "\n"
            for count in clients if name != "detail" else clients[:2]:
                baseline = pgbench(url, script, count, seconds)
                print(row(name, count, wrk(api.url + path, count, seconds), "pgbench, same SQL", baseline), flush=True)
                if name in UNCACHED_TOO:
                    print(row(f"{name} (read cache off)", count, wrk(uncached.url + path, count, seconds), "pgbench, same SQL", baseline), flush=True)
        mask = uploaded[0]
        key = mask["links"]["mask"]
        digest = httpx.head(api.url + key, timeout=30).headers["etag"].strip('"')
        blob_path = f"/blobs/{digest[:2]}/{digest[2:4]}/{digest[4:]}"
        assert httpx.get(front + key, timeout=30).content == httpx.get(static + blob_path, timeout=30).content
        for count in clients[:2]:
            direct = wrk(static + blob_path, count, seconds)
            print(row("conv4 mask, API streams", count, wrk(api.url + key, count, seconds), "nginx, same file", direct.rps), flush=True)
            print(row("conv4 mask, nginx + X-Accel-Redirect", count, wrk(front + key, count, seconds), "nginx, same file", direct.rps), flush=True)
        answer = httpx.get(api.url + "/api/v1/tickets?limit=1", timeout=30)
        print(f"\nAPI answers carry X-Request-ID: {'x-request-id' in answer.headers}; logs in {tmp}")


def _drop_role(role: str) -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')


if __name__ == "__main__":
    main()
