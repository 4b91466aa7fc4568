"""Soak: many clients for a minute against ``nirvana serve --api-workers 2``.

200 concurrent clients for 60 s, mixed: lists (plain, filtered, next page), ticket
details, mask downloads, conditional GETs, HEADs and uploads. Rate limits are set
high enough not to refuse this one address (their shared PostgreSQL store still
counts every request). Prints, and checks:

- no request timed out (30-s client timeout) and no 5xx other than deliberate 503s;
- every upload the server acknowledged (201) can be read back afterwards;
- the API processes' memory (RSS) at the start, half-way and at the end.

    PYTHONPATH=. python bench/soak.py            # 200 clients, 60 s
    PYTHONPATH=. python bench/soak.py --quick    # 20 clients, 10 s
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

from bench.load_common import clone_tickets, nirvana, scratch_database, ticket_files

READS = [("list", 40), ("filtered", 15), ("next", 10), ("detail", 15), ("mask", 8), ("conditional", 6), ("head", 4)]


def api_memory_mb(serve_pid: int) -> list[float]:
    """RSS of each API process (``nirvana serve``'s children), in MB."""
    children = psutil.Process(serve_pid).children(recursive=True)
    return sorted(round(p.memory_info().rss / 2**20, 1) for p in children if "spawn" in " ".join(p.cmdline()))


async def client(http: httpx.AsyncClient, stop: float, state: dict, uploads: list, tally: Counter, acked: list) -> None:
    names, weights = zip(*READS, strict=True)
    while time.monotonic() < stop:
        kind = "upload" if uploads and random.random() < state["upload_share"] else random.choices(names, weights)[0]
        try:
            if kind == "upload":
                answer = await http.post("/api/v1/tickets", files=uploads.pop(), headers=state["auth"])
                if answer.status_code == 201:
                    acked.append(answer.json()["id"])
            else:
                ticket = random.choice(state["ids"])
                answer = await _read(http, kind, ticket, state)
            tally[f"{kind} {answer.status_code}"] += 1
        except httpx.TimeoutException:
            tally[f"{kind} timeout"] += 1
        except httpx.TransportError as exc:
            tally[f"{kind} {type(exc).__name__}"] += 1


async def _read(http: httpx.AsyncClient, kind: str, ticket: str, state: dict) -> httpx.Response:
    if kind == "list":
        return await http.get("/api/v1/tickets", params={"limit": 50})
    if kind == "filtered":
        return await http.get("/api/v1/tickets", params={"task": "fashion-mnist", "sort": "-sparsity", "limit": 50})
    if kind == "next":
        return await http.get("/api/v1/tickets", params={"limit": 50, "cursor": state["cursor"]})
    if kind == "detail":
        return await http.get(f"/api/v1/tickets/{ticket}")
    if kind == "mask":
        return await http.get(f"/api/v1/tickets/{ticket}/mask")
    if kind == "conditional":  # a client revalidating a mask it has: 304
        known = random.choice(list(state["etags"]))
        return await http.get(f"/api/v1/tickets/{known}/mask", headers={"If-None-Match": state["etags"][known]})
    return await http.head(f"/api/v1/tickets/{ticket}/mask")


async def soak(url: str, token: str, clients: int, seconds: float, uploads: list, serve_pid: int) -> None:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        first = (await http.get("/api/v1/tickets", params={"limit": 50})).json()
        ids = [t["id"] for t in first["items"]]
        etags = {t: (await http.head(f"/api/v1/tickets/{t}/mask")).headers["etag"] for t in ids[:10]}
        state = {"auth": {"Authorization": f"Bearer {token}"}, "ids": ids, "etags": etags, "cursor": first["next_cursor"],
                 "upload_share": len(uploads) / max(1.0, clients * seconds * 2)}  # fmt: skip
        tally: Counter[str] = Counter()
        acked: list[str] = []
        memory = [("start", api_memory_mb(serve_pid))]
        stop = time.monotonic() + seconds
        tasks = [asyncio.create_task(client(http, stop, state, uploads, tally, acked)) for _ in range(clients)]
        await asyncio.sleep(seconds / 2)
        memory.append(("half-way", api_memory_mb(serve_pid)))
        await asyncio.gather(*tasks)
        memory.append(("end", api_memory_mb(serve_pid)))
        missing = [t for t in acked if (await http.get(f"/api/v1/tickets/{t}")).status_code != 200]
    total = sum(tally.values())
    timeouts = sum(n for k, n in tally.items() if k.endswith("timeout"))
    errors = sum(n for k, n in tally.items() if k.split()[-1].startswith("5") and not k.endswith(" 503"))
    refused = sum(n for k, n in tally.items() if k.endswith(" 503"))
    print(f"\n{clients} clients, {seconds:g} s: {total:,} requests ({total / seconds:,.0f}/s)")
    for key in sorted(tally):
        print(f"  {key:<24} {tally[key]:>7,}")
    print(f"timeouts: {timeouts}   5xx other than 503: {errors}   deliberate 503s: {refused}")
    print(f"uploads acknowledged: {len(acked)}, missing afterwards: {len(missing)}")
    for when, sizes in memory:
        print(f"API processes' RSS at {when:<9} {sizes} MB")
    verdict = timeouts == 0 and errors == 0 and not missing
    print("PASS" if verdict else "FAIL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 clients for 10 s")
    args = parser.parse_args()
    clients, seconds = (20, 10.0) if args.quick else (200, 60.0)
    tmp = Path(tempfile.mkdtemp(prefix="nirvana-soak-"))
    print("preparing uploads ...", flush=True)
    uploads = [ticket_files("lenet_300_100", "fashion-mnist", density=0.05 + i * 0.001, mask_seed=1000 + i)
               for i in range(10 if args.quick else 60)]  # fmt: skip
    env = {"NIRVANA_HOME": str(tmp / "home"), "NIRVANA_BLOB_DIR": str(tmp / "blobs"),
           "NIRVANA_RATE_LIMIT_API_PER_MINUTE": "10000000", "NIRVANA_RATE_LIMIT_DOWNLOADS_PER_MINUTE": "10000000"}  # fmt: skip
    with scratch_database() as url:
        serve_args = ["serve", "--workers", "0", "--api-workers", "2"]
        with nirvana(serve_args, {**env, "DATABASE_URL": url}, tmp / "serve.log") as server:
            token = (tmp / "home" / "token").read_text().strip()
            for i in range(4):
                files = ticket_files("lenet_300_100", "fashion-mnist", density=0.1 + i / 10, mask_seed=i)
                answer = httpx.post(f"{server.url}/api/v1/tickets", files=files, headers={"Authorization": f"Bearer {token}"}, timeout=120)
                assert answer.status_code == 201, answer.text
            clone_tickets(url, 2_000, 4)
            asyncio.run(soak(server.url, token, clients, seconds, uploads, server.process.pid))
    print(f"logs in {tmp}")


if __name__ == "__main__":
    main()
