"""A ticket in a plain torch.nn.Module through torch.nn.utils.prune."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from nirvana.lottery.models.architectures import build_model, describe
from nirvana.lottery.errors import InvalidMaskError
from nirvana.lottery.interop.torch_prune import apply_prune_masks, load_ticket, remove_prune_masks
from nirvana.lottery.pruning.masks import dense_mask, random_mask_like
from nirvana.lottery.data.tasks import TaskSpec
from nirvana.lottery.tickets.manifest import Manifest, TicketFolder


def _ticket(spec: TaskSpec, init: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    info = describe("lenet_32_16", spec.input_shape, spec.num_classes)
    return random_mask_like({k: torch.rand(v.shape) < 0.3 for k, v in dense_mask(info).items()}, seed=5)


def test_masked_weights_stay_zero_under_any_optimizer(digits_spec: TaskSpec, small_init: dict[str, torch.Tensor]) -> None:
    model = build_model("lenet_32_16", digits_spec.input_shape, digits_spec.num_classes)
    model.load_state_dict(small_init)
    mask = _ticket(digits_spec, small_init)
    apply_prune_masks(model, mask)
    fc1 = model.get_submodule("fc1")
    assert torch.equal(fc1.weight, fc1.weight_orig * fc1.weight_mask)
    assert torch.equal(fc1.weight_mask.bool(), mask["fc1.weight"])
    assert torch.equal(fc1.weight_orig, small_init["fc1.weight"])  # the init is kept, not zeroed
    assert bool((fc1.weight[~mask["fc1.weight"]] == 0).all())

    opt = torch.optim.Adam(model.parameters(), lr=0.1)  # momentum-like state would revive weights
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model(x)  # the forward pre-hook recomputes weight from weight_orig
    assert not torch.equal(fc1.weight_orig, small_init["fc1.weight"])
    for name, m in mask.items():
        weight = model.get_submodule(name.rpartition(".")[0]).weight
        assert bool((weight[~m] == 0).all()) and bool((weight[m] != 0).any())

    remove_prune_masks(model)
    assert not hasattr(fc1, "weight_orig") and not hasattr(fc1, "weight_mask")
    assert isinstance(fc1.weight, nn.Parameter) and bool((fc1.weight[~mask["fc1.weight"]] == 0).all())
    assert set(model.state_dict()) == set(small_init)


def test_prune_remove_by_hand_is_the_same(digits_spec: TaskSpec, small_init: dict[str, torch.Tensor]) -> None:
    model = build_model("lenet_32_16", digits_spec.input_shape, digits_spec.num_classes)
    model.load_state_dict(small_init)
    mask = {k: v.float() for k, v in _ticket(digits_spec, small_init).items()}  # 0/1 floats work too
    apply_prune_masks(model, mask)
    prune.remove(model.get_submodule("fc2"), "weight")
    assert torch.equal(model.get_submodule("fc2").weight.detach(), small_init["fc2.weight"] * mask["fc2.weight"])


def test_bad_masks_are_named(digits_spec: TaskSpec) -> None:
    model = build_model("lenet_32_16", digits_spec.input_shape, digits_spec.num_classes)
    with pytest.raises(InvalidMaskError, match="fc9.weight"):
        apply_prune_masks(model, {"fc9.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(InvalidMaskError, match="shape"):
        apply_prune_masks(model, {"fc1.weight": torch.ones(3, dtype=torch.bool)})


def test_load_ticket_folder(tmp_path: Path, digits_spec: TaskSpec, small_init: dict[str, torch.Tensor]) -> None:
    mask = _ticket(digits_spec, small_init)
    manifest = Manifest(architecture="lenet_32_16", task="digits", claimed={"test_accuracy": 0.9}, title="t")  # type: ignore[arg-type]
    TicketFolder.write(tmp_path / "t", manifest, mask, small_init)
    model, got = load_ticket(tmp_path / "t")
    assert torch.equal(got["fc3.weight"], mask["fc3.weight"])
    fc3 = model.get_submodule("fc3")
    assert torch.equal(fc3.weight, small_init["fc3.weight"] * mask["fc3.weight"])
