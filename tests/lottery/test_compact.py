"""Packed masks and kept inits: exact round trips for every zoo layout and dtype, the
entropy goal, and hostile files refused before anything is allocated."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from nirvana.lottery.errors import InvalidSafetensorsError
from nirvana.lottery.models.architectures import build_model, describe, list_architectures
from nirvana.lottery.tickets.compact import (
    decode_init,
    decode_mask,
    encode_init,
    encode_mask,
    entropy_bits,
    masked_init,
)
from nirvana.lottery.tickets.digests import tensors_digest
from nirvana.lottery.tickets.files import dump_tensors, load_tensors, read_metadata

CIFAR = (3, 32, 32)


def _random_mask(shapes: dict[str, tuple[int, ...]], density: float, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(s, generator=g) < density for n, s in shapes.items()}


@pytest.mark.parametrize("arch", [a for a in list_architectures() if a not in {"vgg16", "vgg19", "resnet1202", "resnet110"}])
@pytest.mark.parametrize("density", [0.0, 0.03, 0.2, 0.7, 1.0])
def test_zoo_masks_round_trip(arch: str, density: float) -> None:
    info = describe(arch, CIFAR, 10)
    shapes = {p.name: p.shape for p in info.parameters if p.prunable}
    mask = _random_mask(shapes, density)
    back = decode_mask(encode_mask(mask), expected=shapes)
    assert tensors_digest(back) == tensors_digest(mask)


@pytest.mark.parametrize("arch", ["lenet_300_100", "conv2", "resnet8", "vgg11"])
def test_zoo_inits_round_trip_through_the_kept_form(arch: str) -> None:
    model = build_model(arch, CIFAR, 10)  # resnet/vgg carry BatchNorm buffers (int64 too)
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    info = describe(arch, CIFAR, 10)
    mask = _random_mask({p.name: p.shape for p in info.parameters if p.prunable}, 0.1)
    data = encode_init(init, mask)
    assert len(data) < len(dump_tensors(init)) * 0.5 or arch == "resnet8"
    back = decode_init(data, mask)
    assert tensors_digest(back) == tensors_digest(masked_init(init, mask))
    # pruned weights that were zero already: the kept form is the dense init exactly
    zeroed = masked_init(init, mask)
    assert tensors_digest(decode_init(encode_init(zeroed, mask), mask)) == tensors_digest(zeroed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8])
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (3, 5), (4, 3, 3, 3), (2, 1, 1, 9, 1)])
def test_every_dtype_and_shape(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    mask = _random_mask({"w": shape}, 0.4, seed=3)
    init = {"w": (torch.randn(shape) * 50).to(dtype), "b": torch.arange(3).to(dtype)}
    assert tensors_digest(decode_mask(encode_mask(mask))) == tensors_digest(mask)
    back = decode_init(encode_init(init, mask), mask)
    assert tensors_digest(back) == tensors_digest(masked_init(init, mask))
    assert back["b"].dtype == dtype


def test_negative_zero_and_empty_and_full_masks() -> None:
    init = {"w": -torch.ones(4, 4), "v": torch.randn(8)}
    for mask in ({"w": torch.zeros(4, 4, dtype=torch.bool), "v": torch.ones(8, dtype=torch.bool)},
                 {"w": torch.ones(4, 4, dtype=torch.bool), "v": torch.zeros(8, dtype=torch.bool)}):
        assert tensors_digest(decode_mask(encode_mask(mask))) == tensors_digest(mask)
        assert tensors_digest(decode_init(encode_init(init, mask), mask)) == tensors_digest(masked_init(init, mask))


@pytest.mark.parametrize("density", [0.2, 0.05, 0.02, 0.5, 0.95])
def test_packed_masks_are_near_the_entropy_bound(density: float) -> None:
    mask = _random_mask({"fc1.weight": (300, 784), "fc2.weight": (100, 300), "fc3.weight": (10, 100)}, density)
    data = encode_mask(mask)
    header = 8 + struct.unpack("<Q", data[:8])[0]
    assert (len(data) - header) * 8 <= 1.3 * entropy_bits(mask)


def _with_layers(layers: object) -> bytes:
    mask = {"w": torch.rand(40, 40) < 0.05}
    data = encode_mask(mask)
    tensors = load_tensors(data)
    meta = {**read_metadata(data), "layers": json.dumps(layers)}
    return dump_tensors(tensors, meta)


def _layer(**change: object) -> list[dict[str, object]]:
    base: list[dict[str, object]] = json.loads(read_metadata(encode_mask({"w": torch.rand(40, 40) < 0.05}))["layers"])
    base[0].update(change)
    return base


@pytest.mark.parametrize(
    "layers",
    [
        "not a list",
        [{"shape": [3]}],
        _layer(shape=[1 << 20, 1 << 20]),  # 2**40 elements: refused before any allocation
        _layer(shape=[-1]),
        _layer(bytes=[0, 10**9]),
        _layer(codec="lzma"),
        _layer(k=999),
        _layer(count=10**6),
        _layer(shape=[2, 2]),  # the codes point outside the shape
        _layer(codec="bits"),
        _layer() * 2,
    ],
)
def test_corrupted_packed_masks_are_refused(layers: object) -> None:
    with pytest.raises(InvalidSafetensorsError):
        decode_mask(_with_layers(layers))


def test_truncated_and_foreign_files_are_refused() -> None:
    mask = {"w": torch.rand(40, 40) < 0.05}
    data = encode_mask(mask)
    for bad in (data[:-3], data[:20], b"garbage", dump_tensors(mask)):
        with pytest.raises(InvalidSafetensorsError):
            decode_mask(bad)
    with pytest.raises(InvalidSafetensorsError, match="architecture"):
        decode_mask(data, expected={"w": (40, 41)})
    init = {"w": torch.randn(40, 40)}
    with pytest.raises(InvalidSafetensorsError):
        decode_init(encode_init(init, mask), {"w": ~mask["w"]})
    with pytest.raises(InvalidSafetensorsError):
        decode_init(dump_tensors(init), mask)


def test_compact_files_are_one_byte_string_per_content() -> None:
    # content-addressed: safetensors writes metadata in hash order; dump_tensors sorts it
    mask = {"w": torch.rand(40, 40) < 0.05}
    meta = {"format_version": "1", "architecture": "lenet_300_100"}
    assert len({encode_mask(mask, meta) for _ in range(8)}) == 1
    assert len({encode_init({"w": torch.ones(40, 40)}, mask, meta) for _ in range(8)}) == 1
