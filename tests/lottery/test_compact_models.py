"""Compact models compute the masked model's function (MLP and conv net), train like
it, and export to ONNX with the same outputs under onnxruntime."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from nirvana.lottery.interop.export import load_exported, save_compact, save_masked, save_onnx
from nirvana.lottery.models.architectures import build_model, describe
from nirvana.lottery.models.compact import CompactUnsupportedError, compact
from nirvana.lottery.pruning.masks import apply_mask
from nirvana.lottery.tickets.compact import masked_init
from nirvana.lottery.tickets.footprint import footprint

CASES = [("lenet_300_100", (1, 28, 28), 0.03), ("conv2", (1, 28, 28), 0.05), ("conv4", (3, 16, 16), 0.1)]


def _ticket(arch: str, shape: tuple[int, ...], density: float, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """An init with nonzero biases (so folding matters) and a mask that kills whole units."""
    g = torch.Generator().manual_seed(seed)
    model = build_model(arch, shape, 10)
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name in init:
        if name.endswith("bias"):
            init[name] = torch.randn(init[name].shape, generator=g) * 0.1
    info = describe(arch, shape, 10)
    mask = {}
    for p in info.parameters:
        if p.prunable:
            m = torch.rand(p.shape, generator=g) < (0.3 if p.name.startswith("conv") else density)
            if p.name.startswith("conv"):
                m[: p.shape[0] // 4] = False  # channels with no inputs
            mask[p.name] = m
    return init, mask


def _masked_model(arch: str, shape: tuple[int, ...], init: dict[str, torch.Tensor], mask: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = build_model(arch, shape, 10)
    model.load_state_dict(masked_init(init, mask))
    return model.eval()


@pytest.mark.parametrize(("arch", "shape", "density"), CASES)
@pytest.mark.parametrize("for_training", [False, True])
def test_compact_model_computes_the_masked_function(arch: str, shape: tuple[int, ...], density: float, for_training: bool, tmp_path: Path) -> None:
    init, mask = _ticket(arch, shape, density)
    small = compact(arch, shape, 10, init, mask, for_training=for_training)
    assert small.parameters < sum(t.numel() for n, t in init.items() if "running" not in n and "num_batches" not in n)
    x = torch.randn(32, *shape)
    expected = _masked_model(arch, shape, init, mask)(x)
    exported = save_compact(tmp_path, small)  # through the files: config.json + model.safetensors
    torch.testing.assert_close(load_exported(tmp_path)(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(exported(x), expected, rtol=1e-5, atol=1e-5)
    if arch.startswith("conv"):
        assert small.config["convs"][0] < 64 or for_training  # input-dead channels fold away (bias into the next)


@pytest.mark.parametrize(("arch", "shape"), [("lenet_300_100", (1, 28, 28)), ("conv2", (1, 28, 28))])
def test_a_full_mask_compacts_to_the_same_network_without_gathers(arch: str, shape: tuple[int, ...]) -> None:
    init, _ = _ticket(arch, shape, 1.0)
    mask = {n: torch.ones_like(t, dtype=torch.bool) for n, t in init.items() if n.endswith("weight")}
    small = compact(arch, shape, 10, init, mask, for_training=True)
    model = small.module()
    assert not model.picks_inputs and not model.picks_flat
    assert small.parameters == sum(t.numel() for t in init.values())
    x = torch.randn(4, *shape)
    torch.testing.assert_close(model(x), _masked_model(arch, shape, init, mask)(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("arch", "shape", "density"), [("lenet_300_100", (1, 28, 28), 0.02), ("conv2", (3, 8, 8), 0.02)])
def test_inputs_selected_once_give_the_same_outputs(arch: str, shape: tuple[int, ...], density: float) -> None:
    """A net built with inputs_selected reads select_inputs' answer and computes what
    the picking net computes from the full inputs; the pick drops some inputs."""
    init, mask = _ticket(arch, shape, density)
    small = compact(arch, shape, 10, init, mask, for_training=True)
    picking, picked = small.module(), small.module(inputs_selected=True)
    assert not picked.picks_inputs
    x = torch.randn(16, *shape)
    selected = picking.select_inputs(x)
    assert selected.shape[1] == len(small.config["input_index"])
    if not arch.startswith("conv"):  # a 2% MLP reads only some of its 784 input features
        assert selected.shape[1] < math.prod(shape)
    assert torch.equal(picked(selected), picking(x))


def test_for_training_the_compact_model_trains_like_the_masked_one() -> None:
    arch, shape = "lenet_300_100", (1, 28, 28)
    init, mask = _ticket(arch, shape, 0.03)
    small = compact(arch, shape, 10, init, mask, for_training=True)
    big, little = _masked_model(arch, shape, init, mask).train(), small.module().train()
    apply_mask(big, mask)
    opt_big, opt_little = torch.optim.SGD(big.parameters(), lr=0.1), torch.optim.SGD(little.parameters(), lr=0.1)
    x, y = torch.randn(64, *shape), torch.randint(0, 10, (64,))
    for _ in range(5):
        for model, opt, m in ((big, opt_big, mask), (little, opt_little, small.mask)):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in m:
                        p.mul_(m[name])
    torch.testing.assert_close(little(x), big(x), rtol=1e-4, atol=1e-4)


def test_architectures_without_a_compact_form_say_so() -> None:
    info = describe("resnet8", (3, 32, 32), 10)
    init = {k: v for k, v in build_model("resnet8", (3, 32, 32), 10).state_dict().items()}
    mask = {p.name: torch.ones(p.shape, dtype=torch.bool) for p in info.parameters if p.prunable}
    with pytest.raises(CompactUnsupportedError):
        compact("resnet8", (3, 32, 32), 10, init, mask)
    fp = footprint("resnet8", (3, 32, 32), 10, init, mask, wire={"mask": {"dense": 1, "packed": 1}, "init": {"dense": 1, "kept": 1}})
    assert fp["compact"] is None and fp["macs_dense"] == fp["macs_sparse"] > 0


def test_macs_count_conv_positions() -> None:
    init, mask = _ticket("conv2", (1, 28, 28), 0.05)
    fp = footprint("conv2", (1, 28, 28), 10, init, mask, wire={"mask": {"dense": 1, "packed": 1}, "init": {"dense": 1, "kept": 1}})
    # conv1: 64x1x3x3 weights at 28x28 positions; conv2 64x64x3x3 at 28x28; fc1 64*14*14 x 256; fc2; fc3
    assert fp["macs_dense"] == 64 * 9 * 784 + 64 * 64 * 9 * 784 + 64 * 196 * 256 + 256 * 256 + 256 * 10
    sparse = sum(int(mask[f"conv{i}.weight"].sum()) * 784 for i in (1, 2)) + sum(int(mask[f"fc{i}.weight"].sum()) for i in (1, 2, 3))
    assert fp["macs_sparse"] == sparse


@pytest.mark.parametrize(("arch", "shape", "density"), CASES[:2])
@pytest.mark.parametrize("form", ["masked", "compact"])
def test_onnx_export_agrees_with_pytorch(arch: str, shape: tuple[int, ...], density: float, form: str, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    init, mask = _ticket(arch, shape, density)
    if form == "masked":
        model = save_masked(tmp_path, arch, shape, 10, init, mask)
    else:
        model = save_compact(tmp_path, compact(arch, shape, 10, init, mask))
    path = save_onnx(tmp_path, model, shape)
    x = torch.randn(7, *shape)
    (got,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(got), _masked_model(arch, shape, init, mask)(x), rtol=1e-4, atol=1e-4)
