"""`nirvana serve --workers N` spreads its workers over the visible GPUs."""

from __future__ import annotations

import pytest

from service.serve import visible_gpus, worker_devices


def test_workers_go_round_robin_over_the_gpus() -> None:
    assert worker_devices(3, 2) == ["cuda:0", "cuda:1", "cuda:0"]
    assert worker_devices(2, 0) == [None, None]


def test_cuda_visible_devices_says_how_many_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == 0
