"""Reading verification results of either schema (docs/verification.md).

Schema 2 (``result["schema"] == 2``) has ``verdict`` and ``arms``; schema 1, written
before replicates, has ``runs`` with one run per arm and booleans ``reproduced`` and
``winning``. The migration marks stored schema-1 results ``"schema": 1``; a result
without the key is schema 1 as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

VERDICTS = ("winning", "not_winning", "not_reproduced")


def schema_of(result: Mapping[str, Any]) -> int:
    return int(result.get("schema", 1))


def verdict_of(result: Mapping[str, Any]) -> str:
    """``winning``, ``not_winning`` or ``not_reproduced``; schema 1 read by the old rules."""
    if schema_of(result) >= 2:
        return str(result["verdict"])
    if not result.get("reproduced"):
        return "not_reproduced"
    return "winning" if result.get("winning") else "not_winning"


def ticket_accuracy_of(result: Mapping[str, Any], arm: str = "ticket") -> float:
    """An arm's retrained accuracy: the mean early-stop test accuracy of its
    replicates (schema 2), the single run's final accuracy (schema 1)."""
    if schema_of(result) >= 2:
        return float(result["arms"][arm]["early_stop_test_accuracy"]["mean"])
    return float(result["runs"][arm]["test_accuracy"])


def dense_accuracy_of(result: Mapping[str, Any]) -> float | None:
    """The dense arm's accuracy, None when the result has no dense run."""
    try:
        return ticket_accuracy_of(result, "dense")
    except (KeyError, TypeError):
        return None
