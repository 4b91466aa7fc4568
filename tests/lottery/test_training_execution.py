"""How a list of runs executes: the batching rule, batch sizes from memory, and
``train_many``'s results, progress and record on the CPU."""

from __future__ import annotations

import copy

import pytest
import torch

from nirvana.lottery.models.architectures import build_model
from nirvana.lottery.training.execution import (
    ExecutionOptions, RunInput, batch_sizes, choose_batched, per_run_bytes, train_many,
)
from nirvana.lottery.training.loop import train
from nirvana.lottery.training.recipes import Recipe
from tests.lottery.test_training_batched import teacher_data

CPU = torch.device("cpu")
RECIPE = Recipe(optimizer="adam", lr=2e-3, batch_size=16, steps=12)


def test_auto_batches_matmul_networks_on_the_cpu_and_everything_on_cuda() -> None:
    mlp, conv = build_model("lenet_32_16", (1, 8, 8), 10), build_model("conv2", (3, 8, 8), 10)
    assert choose_batched("auto", CPU, mlp)[0] is True
    assert choose_batched("auto", CPU, conv)[0] is False
    assert choose_batched("auto", torch.device("cuda"), conv)[0] is True
    assert choose_batched("on", CPU, conv)[0] is True and choose_batched("off", CPU, mlp)[0] is False
    with pytest.raises(ValueError):
        ExecutionOptions(batching="sometimes")  # type: ignore[arg-type]


def test_batches_fit_memory_and_the_cap() -> None:
    assert batch_sizes(12, per_run=1, free=10**9, max_batch=None) == [12]
    assert batch_sizes(12, per_run=1, free=10**9, max_batch=5) == [4, 4, 4]
    assert batch_sizes(12, per_run=100, free=1000, max_batch=None) == [4, 4, 4]  # half of 1000 fits 5
    assert batch_sizes(3, per_run=10**12, free=1000, max_batch=None) == [1, 1, 1]
    small = per_run_bytes(build_model("lenet_32_16", (1, 8, 8), 10), (1, 8, 8), RECIPE)
    wide = per_run_bytes(build_model("lenet_300_100", (1, 8, 8), 10), (1, 8, 8), RECIPE)
    assert 0 < small < wide


@pytest.mark.parametrize("batching", ["on", "off"])
def test_train_many_matches_train_and_reports_one_fraction(batching: str) -> None:
    data = teacher_data((1, 8, 8))
    models = []
    for i in range(3):
        torch.manual_seed(i)
        models.append(build_model("lenet_32_16", (1, 8, 8), 10))
    alone = copy.deepcopy(models)
    recipes = [RECIPE.model_copy(update={"data_seed": i}) for i in range(3)]
    seen: list[float] = []
    results, execution = train_many(
        [RunInput(m, None, r) for m, r in zip(models, recipes, strict=True)], data,
        options=ExecutionOptions(batching=batching, max_batch=2), on_progress=seen.append,  # type: ignore[arg-type]
    )
    assert execution.batched is (batching == "on") and execution.precision == "float32"
    assert execution.batches == ([2, 1] if batching == "on" else [1, 1, 1])
    assert seen == sorted(seen) and seen[0] == 0 and seen[-1] == 1.0
    for model, twin, recipe, result in zip(models, alone, recipes, results, strict=True):
        expected = train(twin, data, recipe)
        assert [s for s, _ in result.curve] == [s for s, _ in expected.curve]
        torch.testing.assert_close(model.state_dict(), twin.state_dict(), rtol=1e-3, atol=2e-4)
