"""Schemathesis hooks for tests/api/test_schemathesis.py (loaded through
``SCHEMATHESIS_HOOKS``): a schema can say an upload is three files, not that they are
a manifest and safetensors that fit together, so a schema-valid upload (a positive case:
a dict of the parts) is replaced by a real ticket. Its id then
feeds the stateful phase through the document's links. The negative cases go to the
server as generated."""

from __future__ import annotations

import hashlib
from typing import Any

import schemathesis

from tests.support.tickets import make_ticket

_PARTS = {"manifest", "mask"}
_generated: dict[int, Any] = {}


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.operation.label != "POST /api/v1/tickets" or not _positive(case):
        return
    body = case.body
    if not isinstance(body, dict) or not _PARTS <= set(body) or not set(body) <= _PARTS | {"init"}:
        return
    # A few distinct tickets, some uploaded twice (the 200 of a duplicate).
    ticket = make_ticket(mask_seed=hashlib.sha256(repr(body).encode()).digest()[0] % 4)
    _generated[id(case)] = body
    case.body = {"manifest": ticket.manifest_bytes(), "mask": ticket.mask_bytes()}


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    # Give the case back its generated body: Schemathesis derives further cases (some
    # negative) from this one, and those must not inherit the real ticket.
    if id(case) in _generated:
        case.body = _generated.pop(id(case))


def _positive(case: Any) -> bool:
    """A generated case (fuzzing or stateful) every part of which fits the schema. The
    coverage phase is left alone: it derives negative cases from positive templates."""
    meta = getattr(case, "meta", None)
    if meta is None or str(meta.phase.name) not in ("fuzzing", "stateful") or not meta.generation.mode.is_positive:
        return False
    return all(component.mode.is_positive for component in meta.components.values())
