from __future__ import annotations

import io
import json
import os

import pytest
import torch

from nirvana.lottery.errors import InvalidSafetensorsError
from nirvana.lottery.tickets.files import dump_tensors, load_tensors, read_metadata
from nirvana.lottery.tickets.digests import tensors_digest


def sample() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"fc1.weight": torch.rand(4, 3, generator=g) < 0.5, "fc2.weight": torch.randn(2, 4, generator=g)}


def test_round_trip_with_metadata() -> None:
    t = sample()
    data = dump_tensors(t, {"format_version": "1", "architecture": "lenet_4"})
    back = load_tensors(data)
    assert set(back) == set(t)
    assert all(torch.equal(back[k], t[k]) and back[k].dtype == t[k].dtype for k in t)
    assert read_metadata(data) == {"format_version": "1", "architecture": "lenet_4"}
    assert read_metadata(dump_tensors(t)) == {}


def test_non_contiguous_input_is_dumped() -> None:
    w = torch.arange(12.0).reshape(3, 4).t()
    assert torch.equal(load_tensors(dump_tensors({"w": w}))["w"], w)


def reject(data: bytes) -> InvalidSafetensorsError:
    with pytest.raises(InvalidSafetensorsError) as info:
        load_tensors(data)
    assert info.value.code == "invalid_safetensors"
    return info.value


def test_truncated() -> None:
    data = dump_tensors(sample())
    reject(data[: len(data) - 5])
    reject(data[:6])
    reject(b"")


def test_header_length_beyond_file() -> None:
    data = dump_tensors(sample())
    bad = (len(data) * 10).to_bytes(8, "little") + data[8:]
    assert "exceeds the file" in reject(bad).detail


def test_offsets_outside_buffer() -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 800]}}).encode()
    assert "data_offsets" in reject(len(header).to_bytes(8, "little") + header + b"\0" * 8).detail


def test_header_not_an_object() -> None:
    header = b"[1, 2, 3]"
    reject(len(header).to_bytes(8, "little") + header)


def test_pickle_from_torch_save() -> None:
    buf = io.BytesIO()
    torch.save(sample(), buf)
    assert "pickle" in reject(buf.getvalue()).detail
    assert "safetensors" in reject(b"\x80\x04\x95" + b"\x00" * 40).detail


def test_random_bytes() -> None:
    reject(os.urandom(4096))
    reject(b"\x10\x00\x00\x00\x00\x00\x00\x00" + os.urandom(64))


def test_digest_ignores_metadata_and_order_but_not_bits() -> None:
    t = sample()
    d = tensors_digest(t)
    assert d == tensors_digest(load_tensors(dump_tensors(t, {"architecture": "x"})))
    assert d == tensors_digest(dict(reversed(list(t.items()))))
    flipped = {k: v.clone() for k, v in t.items()}
    flipped["fc1.weight"][0, 0] = ~flipped["fc1.weight"][0, 0]
    assert tensors_digest(flipped) != d
    raw = t["fc2.weight"].clone()
    raw.view(torch.int32)[0, 0] ^= 1  # one bit of one float
    assert tensors_digest({**t, "fc2.weight": raw}) != d
    assert tensors_digest({**t, "fc2.weight": t["fc2.weight"].double()}) != d  # dtype counts
    assert tensors_digest({"a": torch.zeros(2, 3)}) != tensors_digest({"a": torch.zeros(3, 2)})
