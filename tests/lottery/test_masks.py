from __future__ import annotations

import json

import pytest
import torch

from nirvana.lottery.models.architectures import ArchitectureInfo, build_model, describe
from nirvana.lottery.errors import InvalidInitError, InvalidMaskError
from nirvana.lottery.pruning.masks import apply_mask, dense_mask, random_mask_like, sparsity_report, validate_init, validate_mask


@pytest.fixture
def info() -> ArchitectureInfo:
    return describe("lenet_300_100", (1, 28, 28), 10)


def half_mask(info: ArchitectureInfo) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {p.name: torch.rand(p.shape, generator=g) < 0.5 for p in info.parameters if p.prunable}


def test_valid_mask_passes(info: ArchitectureInfo) -> None:
    validate_mask(half_mask(info), info)
    validate_mask(dense_mask(info), info)


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda m: m.pop("fc2.weight"), "fc2.weight"),
        (lambda m: m.__setitem__("fc9.weight", torch.ones(3, dtype=torch.bool)), "fc9.weight"),
        (lambda m: m.__setitem__("fc1.bias", torch.ones(300, dtype=torch.bool)), "fc1.bias"),
        (lambda m: m.__setitem__("fc3.weight", torch.ones(100, 10, dtype=torch.bool)), "fc3.weight"),
        (lambda m: m.__setitem__("fc1.weight", torch.ones(300, 784, dtype=torch.uint8)), "torch.bool"),
        (lambda m: m.__setitem__("fc1.weight", torch.ones(300, 784)), "fc1.weight"),
    ],
)
def test_invalid_masks(info: ArchitectureInfo, mutate, fragment: str) -> None:  # type: ignore[no-untyped-def]
    mask = half_mask(info)
    mutate(mask)
    with pytest.raises(InvalidMaskError, match=fragment) as err:
        validate_mask(mask, info)
    assert err.value.code == "invalid_mask"


def test_all_zero_mask_rejected(info: ArchitectureInfo) -> None:
    mask = {k: torch.zeros_like(v) for k, v in dense_mask(info).items()}
    with pytest.raises(InvalidMaskError, match="no weight"):
        validate_mask(mask, info)


def test_validate_init(info: ArchitectureInfo) -> None:
    good = {p.name: torch.zeros(p.shape) for p in info.parameters}
    validate_init(good, info)
    cases = [
        ({k: v for k, v in good.items() if k != "fc1.bias"}, "fc1.bias"),
        ({**good, "extra": torch.zeros(1)}, "extra"),
        ({**good, "fc2.weight": torch.zeros(300, 100)}, "shape"),
        ({**good, "fc2.weight": torch.zeros(100, 300, dtype=torch.int32)}, "floating"),
        ({**good, "fc3.bias": torch.tensor([float("nan")] * 10)}, "NaN"),
        ({**good, "fc3.bias": torch.full((10,), float("inf"))}, "NaN or Inf"),
    ]
    for init, fragment in cases:
        with pytest.raises(InvalidInitError, match=fragment):
            validate_init(init, info)


def test_sparsity_report(info: ArchitectureInfo) -> None:
    mask = dense_mask(info)
    mask["fc1.weight"][:150] = False  # half of fc1 (117,600 weights)
    report = sparsity_report(mask, info)
    assert report.prunable == 266_200
    assert report.remaining == 266_200 - 117_600
    assert report.density == pytest.approx(report.remaining / 266_200)
    assert report.sparsity == pytest.approx(1 - report.density)
    assert report.layers["fc1.weight"].density == 0.5
    assert report.layers["fc3.weight"].remaining == 1000
    decoded = json.loads(json.dumps(report.to_dict()))
    assert decoded["layers"]["fc1.weight"] == {"remaining": 117_600, "total": 235_200, "density": 0.5}


def test_random_mask_like_keeps_per_layer_counts(info: ArchitectureInfo) -> None:
    mask = half_mask(info)
    a, b, c = random_mask_like(mask, 1), random_mask_like(mask, 1), random_mask_like(mask, 2)
    for name, m in mask.items():
        assert a[name].dtype == torch.bool and a[name].shape == m.shape
        assert int(a[name].sum()) == int(m.sum())
        assert torch.equal(a[name], b[name])
    assert not torch.equal(a["fc1.weight"], c["fc1.weight"])
    assert not torch.equal(a["fc1.weight"], mask["fc1.weight"])
    validate_mask(a, info)


def test_apply_mask_zeroes_in_place(info: ArchitectureInfo) -> None:
    model = build_model("lenet_300_100", (1, 28, 28), 10)
    mask = half_mask(info)
    apply_mask(model, mask)
    w = model.state_dict()["fc1.weight"]
    assert bool((w[~mask["fc1.weight"]] == 0).all())
    assert bool((w[mask["fc1.weight"]] != 0).all())
    with pytest.raises(InvalidMaskError):
        apply_mask(model, {"nope": torch.ones(1, dtype=torch.bool)})
