"""What bench/api_load.py and bench/soak.py share: a throwaway database, real ticket
files, the API as ``nirvana api`` / ``nirvana serve`` subprocesses, Debian's nginx, and
wrk and pgbench with their output parsed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import torch

from nirvana.lottery.data.tasks import get_task
from nirvana.lottery.models.architectures import describe
from nirvana.lottery.tickets.files import dump_tensors

ROOT = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_database(url: str, name: str, user: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(database=name)
    if user is not None:
        parsed = parsed.set(username=user)
    return parsed.render_as_string(hide_password=False)


@contextmanager
def scratch_database() -> Iterator[str]:
    """A migrated database of its own on the local server, dropped afterwards."""
    from db.migrate import upgrade
    from db.session import make_engine

    name = f"nirvana_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(SERVER_URL, name)
    try:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_token(database_url: str) -> str:
    from db.session import make_engine, make_sessionmaker, unit_of_work
    from db.tokens import create_token

    engine = make_engine(database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            _, secret = create_token(session, user_name="bench", token_name="bench", scopes=("read", "write"))
    finally:
        engine.dispose()
    return secret


def ticket_files(architecture: str, task: str, *, density: float, mask_seed: int, seed: int = 0) -> dict[str, tuple[str, bytes, str]]:
    """A multipart upload of a ticket: a random mask at ``density`` on the seed's init."""
    spec = get_task(task)
    info = describe(architecture, spec.input_shape, spec.num_classes)
    generator = torch.Generator().manual_seed(mask_seed)
    mask = {p.name: torch.rand(p.shape, generator=generator) < density for p in info.parameters if p.prunable}
    manifest = {
        "architecture": architecture, "task": task,
        "init": {"scheme": "kaiming_normal", "seed": seed, "rewind_step": 0},
        "recipe": {"optimizer": "adam", "lr": 0.003, "batch_size": 64, "steps": 200, "data_seed": 0},
        "claimed": {"test_accuracy": 0.9}, "method": "imp",
        "title": f"{architecture} on {task} at {density:.1%} weights remaining",
        "description": "Found by iterative magnitude pruning, 20% per level, rewound to init. " * 4,
        "tags": ["imp", "bench", architecture],
    }  # fmt: skip
    return {
        "manifest": ("ticket.json", json.dumps(manifest).encode(), "application/json"),
        "mask": ("mask.safetensors", dump_tensors(mask), "application/octet-stream"),
    }


# Clones of the uploaded tickets (materialised first: a lateral scan of the table being
# inserted into walks every new index entry, quadratic): other ids, densities, accuracies, ages and verdicts, the
# same blobs and JSON documents (so rows are as wide as real ones), one verification each.
_CLONE = """
WITH t AS MATERIALIZED (SELECT *, row_number() OVER (ORDER BY id) - 1 AS n FROM tickets)
INSERT INTO tickets (id, architecture, task, init_scheme, seed, rewind_step, init_digest, mask_digest, mask_sha256,
    init_sha256, manifest, recipe, claimed_accuracy, method, title, description, tags, license, parent_id, density,
    remaining, prunable, layers, accuracy, verified, verified_accuracy, winning, submitter_id, created_at)
SELECT encode(sha256(convert_to('bench' || g || t.id, 'UTF8')), 'hex'), t.architecture, t.task, t.init_scheme, g,
    t.rewind_step, t.init_digest, t.mask_digest, t.mask_sha256, t.init_sha256, t.manifest, t.recipe,
    t.claimed_accuracy, t.method, t.title, t.description, t.tags, t.license, t.parent_id, d.density,
    GREATEST(1, (d.density * t.prunable)::bigint), t.prunable, t.layers, 0.5 + random() * 0.45, g %% 3 = 0,
    CASE WHEN g %% 3 = 0 THEN 0.5 + random() * 0.45 END, CASE WHEN g %% 3 = 0 THEN g %% 2 = 0 END, t.submitter_id,
    now() - g * interval '7 seconds'
FROM generate_series(1, %(count)s) AS g
JOIN t ON t.n = g %% %(templates)s
CROSS JOIN LATERAL (SELECT 0.005 + random() * 0.9 AS density) d
"""
_VERIFY = """
INSERT INTO verifications (ticket_id, task, recipe, claimed_accuracy, state, attempts, progress, created_at,
    started_at, finished_at)
SELECT id, task, recipe, claimed_accuracy, CASE WHEN verified THEN 'succeeded' ELSE 'queued' END,
    CASE WHEN verified THEN 1 ELSE 0 END, CASE WHEN verified THEN 1 ELSE 0 END, created_at,
    CASE WHEN verified THEN created_at END, CASE WHEN verified THEN created_at + interval '20 minutes' END
FROM tickets WHERE NOT EXISTS (SELECT FROM verifications v WHERE v.ticket_id = tickets.id)
"""


def clone_tickets(database_url: str, count: int, templates: int) -> None:
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(_CLONE, {"count": count, "templates": templates})
        conn.execute(_VERIFY)
        conn.execute("VACUUM ANALYZE tickets")
        conn.execute("VACUUM ANALYZE verifications")


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def nirvana(args: list[str], env: dict[str, str], log: Path, *, timeout: float = 180) -> Iterator[Server]:
    """``python -m nirvana <args> --port P``; yields once /api/v1/health answers 200.
    Stopped with SIGINT (then SIGKILL)."""
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **env}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "nirvana", *args, "--port", str(port)], cwd=ROOT,
                                   env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{args} exited: {log.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{url}/api/v1/health", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{args} not healthy: {log.read_text()[-3000:]}")
                time.sleep(0.3)
            yield Server(url, process, log)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


NGINX_CONF = """
daemon off;
worker_processes 1;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    # Baseline: the blob files, straight from disk.
    server {{
        listen 127.0.0.1:{static_port};
        location /blobs/ {{ alias {blobs}/; default_type application/octet-stream; }}
    }}
{front}
}}
"""


@contextmanager
def nginx(blobs: Path, api_url: str | None = None) -> Iterator[tuple[str, str | None]]:
    """Debian's nginx serving ``blobs`` at ``/blobs/`` (the baseline) and, given
    ``api_url``, deploy/nginx.conf's server in front of that API. Yields the two URLs."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    tmp = Path(tempfile.mkdtemp(prefix="nirvana-nginx-"))
    static_port, front_port = free_port(), free_port()
    front = ""
    if api_url is not None:
        conf = (ROOT / "deploy" / "nginx.conf").read_text()
        conf = conf.replace("server api:8000;", f"server {api_url.removeprefix('http://')};")
        conf = conf.replace("listen 80;", f"listen 127.0.0.1:{front_port};").replace("/data/blobs/", f"{blobs}/")
        conf = conf.replace("127.0.0.1:8081", f"127.0.0.1:{free_port()}").replace("/var/cache/nginx/", f"{tmp}/")
        front = "\n".join(line for line in conf.splitlines() if not line.lstrip().startswith("#"))
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, static_port=static_port, blobs=blobs, front=front))
    process = subprocess.Popen([binary, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{static_port}"
        for _ in range(100):
            try:
                httpx.get(base, timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    raise RuntimeError(f"nginx exited: {process.stderr.read().decode() if process.stderr else ''}") from None
                time.sleep(0.1)
        yield base, (f"http://127.0.0.1:{front_port}" if api_url else None)
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, clients: int, seconds: float, headers: dict[str, str] | None = None) -> Load:
    """wrk's requests/s and latency percentiles; non-2xx/3xx answers and socket errors
    count as errors."""
    # One load thread: on a 2-core machine a second one takes the server's core, and
    # what is measured is the scheduler. One wrk thread sustains far more than either
    # server answers here.
    args = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "30s"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Load(rps, p50, p99, errors + (int(non2xx.group(1)) if non2xx else 0))


def pgbench(database_url: str, script: str, clients: int, seconds: float) -> float:
    """Transactions/s of ``script`` (one transaction = the script once)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(script)
    try:
        args = ["pgbench", "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(max(1, round(seconds))),
                "-f", handle.name, "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
                "-U", url.username or "postgres", url.database or "postgres"]  # fmt: skip
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(handle.name)
    return float(re.search(r"tps = ([\d.]+) \(without initial", out).group(1))  # type: ignore[union-attr]
