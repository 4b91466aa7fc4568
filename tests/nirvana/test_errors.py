"""raise_for_problem: a problem+json ``code`` becomes its exception class."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from nirvana import errors
from nirvana.errors import NirvanaError, raise_for_problem


def problem(status: int, code: str | None, detail: str = "what went wrong", **headers: str) -> httpx.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": "t", "status": status, "detail": detail}
    if code is not None:
        body["code"] = code
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"content-type": "application/problem+json", **headers},
        request=httpx.Request("GET", "http://nirvana.test/api/v1/x"),
    )


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (404, "ticket_not_found", errors.TicketNotFoundError),
        (404, "verification_not_found", errors.VerificationNotFoundError),
        (401, "unauthorized", errors.UnauthorizedError),
        (401, "invalid_token", errors.UnauthorizedError),
        (403, "insufficient_scope", errors.ForbiddenError),
        (422, "invalid_mask", errors.InvalidMaskError),
        (422, "invalid_safetensors", errors.InvalidSafetensorsError),
        (422, "invalid_manifest", errors.InvalidManifestError),
        (422, "invalid_claim", errors.InvalidManifestError),
        (422, "init_mismatch", errors.InvalidInitError),
        (413, "payload_too_large", errors.PayloadTooLargeError),
        (422, "ambiguous_ticket_id", errors.AmbiguousIdError),
        (422, "invalid_ticket_id", errors.InvalidRequestError),
        (409, "task_unavailable", errors.TaskUnavailableError),
    ],
)
def test_known_codes_raise_their_class(status: int, code: str, cls: type[NirvanaError]) -> None:
    with pytest.raises(cls) as caught:
        raise_for_problem(problem(status, code, "the detail"))
    assert type(caught.value) is cls
    assert (caught.value.code, caught.value.status, caught.value.detail) == (code, status, "the detail")
    assert caught.value.problem["code"] == code


def test_upload_errors_share_a_base_class() -> None:
    with pytest.raises(errors.InvalidTicketError):
        raise_for_problem(problem(422, "invalid_mask"))


def test_unknown_code_raises_its_status_class_and_keeps_the_code() -> None:
    with pytest.raises(NirvanaError) as caught:
        raise_for_problem(problem(404, "brand_new_code"))
    assert type(caught.value) is errors.NotFoundError
    assert caught.value.code == "brand_new_code"
    assert str(caught.value) == "what went wrong (brand_new_code)"
    with pytest.raises(NirvanaError) as teapot:
        raise_for_problem(problem(418, "brand_new_code"))
    assert type(teapot.value) is NirvanaError and teapot.value.code == "brand_new_code"


def test_code_from_header_and_class_from_status_when_the_body_has_none() -> None:
    with pytest.raises(errors.TicketNotFoundError):
        raise_for_problem(problem(404, None, **{"X-Error-Code": "ticket_not_found"}))
    html = httpx.Response(404, text="<h1>Not Found</h1>", request=httpx.Request("GET", "http://nirvana.test/x"))
    with pytest.raises(errors.NotFoundError) as caught:
        raise_for_problem(html)
    assert caught.value.code == "not_found" and "404" in caught.value.detail


def test_rate_limit_carries_retry_after() -> None:
    with pytest.raises(errors.RateLimitedError) as caught:
        raise_for_problem(problem(429, "rate_limited", **{"Retry-After": "7"}))
    assert caught.value.retry_after == 7.0


def test_success_and_not_modified_do_not_raise() -> None:
    raise_for_problem(httpx.Response(200, json={}))
    raise_for_problem(httpx.Response(304))
