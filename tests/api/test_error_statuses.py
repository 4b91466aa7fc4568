"""The core's errors carry a code and no HTTP status; the API picks the status."""

from __future__ import annotations

from api.errors import lottery_status
from nirvana.lottery import errors


def test_the_api_maps_core_errors_to_statuses_by_class() -> None:
    assert lottery_status(errors.TaskUnavailableError("no files")) == 409
    assert lottery_status(errors.InvalidDatasetError("bad magic")) == 409  # a TaskUnavailableError
    assert lottery_status(errors.MissingExtraError("the digits task", "scikit-learn", "data")) == 409
    assert lottery_status(errors.InvalidMaskError("wrong shape")) == 422
    assert lottery_status(errors.LotteryError("anything else")) == 422


def test_core_errors_know_nothing_of_http() -> None:
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.LotteryError)]
    assert len(classes) > 10 and not [c.__name__ for c in classes if hasattr(c, "status")]
