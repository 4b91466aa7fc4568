"""Sending one request the way a polite client does: reads that hit a rate limit wait
as long as the server's ``Retry-After`` asks (within reason) and try again."""

from __future__ import annotations

import time
from typing import Any

import httpx

#: Waits longer than this are the caller's decision: the 429 is raised instead.
MAX_RETRY_AFTER = 30.0
RETRIES = 3


def send(http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """``http.request(...)``; a GET answered 429 is retried up to ``RETRIES`` times
    after the ``Retry-After`` the server sent, when that is at most ``MAX_RETRY_AFTER``
    seconds. Writes are never retried: they may have taken effect."""
    for _ in range(RETRIES):
        response = http.request(method, path, **kwargs)
        if method != "GET" or response.status_code != 429:
            return response
        try:
            wait = float(response.headers.get("retry-after", ""))
        except ValueError:
            return response
        if wait > MAX_RETRY_AFTER:
            return response
        response.close()
        time.sleep(wait)
    return http.request(method, path, **kwargs)
