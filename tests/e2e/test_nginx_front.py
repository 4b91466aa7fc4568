"""deploy/nginx.conf in front of a real uvicorn, as docker-compose runs them: the API
checks a download and hands it to nginx (X-Accel-Redirect), and nginx keeps a download
by full id, answering repeats without the API, except for requests with a token."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.load_common import nginx
from tests.support.processes import ServedTicket, uvicorn_with_ticket

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(), reason="needs Debian's nginx"),
]
MASK_ROUTE = 'route="/api/v1/tickets/{ref}/mask"'


@dataclass
class Front:
    url: str
    api: ServedTicket


@pytest.fixture(scope="module")
def front(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    tmp = tmp_path_factory.mktemp("nginx-front")
    served = uvicorn_with_ticket(module_database_url, tmp, "front", mask_seed=3, NIRVANA_ACCEL_REDIRECT_PREFIX="/_blobs/")
    with served as api, nginx(tmp / "blobs", api.url) as (_, url):
        assert url is not None
        yield Front(url, api)


def _mask_downloads_seen_by_api(api: str) -> float:
    text = httpx.get(f"{api}/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("nirvana_http_requests_total") and MASK_ROUTE in line and 'method="GET"' in line)  # fmt: skip


def _mask_link(front: Front) -> str:
    links = front.api.ticket["links"]
    assert isinstance(links, dict)
    return str(links["mask"])


def test_a_download_by_full_id_is_sent_by_nginx_and_repeats_never_reach_the_api(front: Front) -> None:
    link = _mask_link(front)
    first = httpx.get(front.url + link, timeout=30)
    assert first.status_code == 200 and first.headers["x-cache"] in ("MISS", "HIT")
    sha = hashlib.sha256(first.content).hexdigest()
    assert first.headers["etag"] == f'"{sha}"' and first.headers["x-checksum-sha256"] == sha
    seen = _mask_downloads_seen_by_api(front.api.url)
    again = httpx.get(front.url + link, timeout=30)
    assert again.headers["x-cache"] == "HIT" and again.content == first.content
    assert again.headers["etag"] == f'"{sha}"'
    assert re.fullmatch(r"[0-9a-f]{32}", again.headers["x-request-id"])
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    part = httpx.get(front.url + link, headers={"Range": "bytes=10-19"}, timeout=30)
    assert part.status_code == 206 and part.content == first.content[10:20]
    assert _mask_downloads_seen_by_api(front.api.url) == seen


def test_downloads_with_a_token_always_reach_the_api(front: Front) -> None:
    link = _mask_link(front)
    httpx.get(front.url + link, timeout=30)
    seen = _mask_downloads_seen_by_api(front.api.url)
    with_token = httpx.get(front.url + link, headers=front.api.auth, timeout=30)
    assert with_token.status_code == 200 and with_token.headers["x-cache"] == "BYPASS"
    assert _mask_downloads_seen_by_api(front.api.url) == seen + 1
    made_up = httpx.get(front.url + link, headers={"Authorization": "Bearer made-up"}, timeout=30)
    assert made_up.status_code == 401 and made_up.json()["code"] == "invalid_token"


def test_a_download_by_id_prefix_is_never_kept(front: Front) -> None:
    prefix = str(front.api.ticket["id"])[:12]
    for _ in range(2):
        answer = httpx.get(f"{front.url}/api/v1/tickets/{prefix}/mask", timeout=30)
        assert answer.status_code == 200 and answer.headers["x-cache"] == "BYPASS"
