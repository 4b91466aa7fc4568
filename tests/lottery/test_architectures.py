from __future__ import annotations

import pytest
import torch

from nirvana.lottery.models.architectures import build_model, describe, list_architectures, prunable_names
from nirvana.lottery.errors import UnknownArchitectureError


def test_lenet_300_100_on_fashion_mnist_layout() -> None:
    info = describe("lenet_300_100", (1, 28, 28), 10)
    layout = [(p.name, p.shape, p.prunable) for p in info.parameters]
    assert layout == [
        ("fc1.weight", (300, 784), True),
        ("fc1.bias", (300,), False),
        ("fc2.weight", (100, 300), True),
        ("fc2.bias", (100,), False),
        ("fc3.weight", (10, 100), True),
        ("fc3.bias", (10,), False),
    ]
    assert info.total == 266_610
    assert info.prunable == 266_200


def test_build_model_matches_describe_and_runs() -> None:
    model = build_model("lenet_300_100", (1, 28, 28), 10)
    assert list(model.state_dict()) == [p.name for p in describe("lenet_300_100", (1, 28, 28), 10).parameters]
    assert prunable_names(model) == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


def test_sizes_come_from_the_task() -> None:
    model = build_model("lenet_100", (40,), 7)
    assert model(torch.zeros(2, 40)).shape == (2, 7)
    assert [tuple(p.shape) for p in model.parameters()] == [(100, 40), (100,), (7, 100), (7,)]


def test_describe_is_cheap_for_a_huge_network() -> None:
    info = describe("lenet_16384_16384_16384", (3, 224, 224), 1000)
    assert info.total > 2_000_000_000  # would be 8 GB if allocated


@pytest.mark.parametrize(
    "name",
    ["lenet_", "lenet_0", "lenet_abc", "lenet", "lenet_300__100", "lenet_16385", "lenet_300_100x", "resnet9000", "", "LENET_300"],
)
def test_malformed_or_unknown_names(name: str) -> None:
    with pytest.raises(UnknownArchitectureError) as info:
        describe(name, (1, 28, 28), 10)
    assert info.value.code == "unknown_architecture"


def test_list_architectures_examples_are_valid() -> None:
    names = list_architectures()
    assert "lenet_300_100" in names
    for name in names:
        describe(name, (1, 28, 28), 10)
