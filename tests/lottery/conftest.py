"""Shared fixtures for the lottery tests: small recipes on the tasks that run anywhere."""

from __future__ import annotations

import pytest
import torch

from nirvana.lottery.models.init import generate_init
from nirvana.lottery.data.tasks import TaskData, TaskSpec, get_task, load_task
from nirvana.lottery.training.recipes import Recipe


@pytest.fixture(scope="session")
def digits() -> TaskData:
    return load_task("digits")


@pytest.fixture(scope="session")
def digits_spec() -> TaskSpec:
    return get_task("digits")


@pytest.fixture
def short_recipe() -> Recipe:
    return Recipe(optimizer="adam", lr=1e-3, batch_size=64, steps=150)


@pytest.fixture
def small_init(digits_spec: TaskSpec) -> dict[str, torch.Tensor]:
    return generate_init("lenet_32_16", digits_spec, "kaiming_normal", 0)
