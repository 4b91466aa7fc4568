from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from nirvana.lottery.models.architectures import describe
from nirvana.lottery.errors import (
    InitMismatchError,
    InvalidInitError,
    InvalidManifestError,
    InvalidMaskError,
    InvalidRecipeError,
    InvalidSafetensorsError,
    LotteryError,
    UnknownArchitectureError,
    UnknownInitSchemeError,
    UnknownTaskError,
)
from nirvana.lottery.models.init import generate_init
from nirvana.lottery.pruning.masks import dense_mask
from nirvana.lottery.data.tasks import get_task
from nirvana.lottery.tickets.manifest import Manifest, parse_manifest, prepare_ticket, short_id, ticket_id, TicketFolder
from nirvana.lottery.tickets.files import dump_tensors
from nirvana.lottery.tickets.digests import tensors_digest

ARCH = "lenet_32_16"


def manifest(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "architecture": ARCH,
        "task": "digits",
        "init": {"scheme": "kaiming_normal", "seed": 3},
        "claimed": {"test_accuracy": 0.9},
        "title": "a small ticket",
    }
    base.update(over)
    return base


def encode(m: dict[str, Any]) -> bytes:
    return json.dumps(m).encode()


def mask_bytes() -> bytes:
    mask = dense_mask(describe(ARCH, (1, 8, 8), 10))
    mask["fc1.weight"][:, ::2] = False
    return dump_tensors(mask)


def seed_init(seed: int = 3) -> dict[str, torch.Tensor]:
    return generate_init(ARCH, get_task("digits"), "kaiming_normal", seed)


def test_ticket_id_is_sha256_of_canonical_json() -> None:
    fields = dict(architecture="lenet_300_100", init_scheme="kaiming_normal", seed=0, rewind_step=0, init_digest="a" * 64, mask_digest="b" * 64)
    expected = hashlib.sha256(
        b'{"architecture":"lenet_300_100","init_digest":"' + b"a" * 64 + b'","init_scheme":"kaiming_normal",'
        b'"mask_digest":"' + b"b" * 64 + b'","rewind_step":0,"seed":0}'
    ).hexdigest()
    assert ticket_id(**fields) == expected  # type: ignore[arg-type]
    assert ticket_id(**{**fields, "seed": None}) != expected  # type: ignore[arg-type]
    assert short_id(expected) == expected[:12]


def test_manifest_defaults_and_round_trip() -> None:
    m = parse_manifest(encode(manifest()))
    assert m.recipe is None and m.method == "imp" and m.license == "CC-BY-4.0" and m.format_version == 1
    assert parse_manifest(m.to_json()) == m


@pytest.mark.parametrize(
    "data, code, fragment",
    [
        (b"\xff\xfe", "invalid_manifest", "UTF-8"),
        (b"{not json", "invalid_manifest", "not JSON"),
        (b"[1]", "invalid_manifest", "object"),
        (encode(manifest(claimed={"test_accuracy": 1.5})), "invalid_claim", "claimed.test_accuracy"),
        (encode(manifest(claimed={"test_accuracy": -0.1})), "invalid_claim", "claimed.test_accuracy"),
        (encode(manifest(titel="typo")), "invalid_manifest", "titel"),
        (encode(manifest(title="")), "invalid_manifest", "title"),
        (encode(manifest(tags=["Bad Tag"])), "invalid_manifest", "tags.0"),
        (encode(manifest(tags=[f"t{i}" for i in range(21)])), "invalid_manifest", "tags"),
        (encode(manifest(parent="not-hex")), "invalid_manifest", "parent"),
        (encode(manifest(init={"seed": 1, "rewind_step": -1})), "invalid_manifest", "init.rewind_step"),
        (encode(manifest(recipe={"lr": 0, "batch_size": 1, "steps": 1})), "invalid_manifest", "recipe.lr"),
        (encode(manifest(recipe={"lr": 1, "batch_size": 1, "steps": 1, "lrr": 2})), "invalid_manifest", "recipe.lrr"),
    ],
)
def test_manifest_errors(data: bytes, code: str, fragment: str) -> None:
    with pytest.raises(InvalidManifestError) as info:
        parse_manifest(data)
    assert info.value.code == code
    assert fragment in info.value.detail


def test_prepare_seed_only() -> None:
    t = prepare_ticket(encode(manifest()), mask_bytes())
    init = seed_init()
    assert all(torch.equal(t.init[k], init[k]) for k in init)
    assert t.init_digest == tensors_digest(init)
    assert t.id == ticket_id(architecture=ARCH, init_scheme="kaiming_normal", seed=3, rewind_step=0, init_digest=t.init_digest, mask_digest=t.mask_digest)
    assert t.recipe == get_task("digits").default_recipe
    assert t.sparsity.layers["fc1.weight"].density == 0.5
    assert t.info.name == ARCH


def test_prepare_same_ticket_same_id_whatever_the_metadata() -> None:
    a = prepare_ticket(encode(manifest()), mask_bytes())
    mask = a.mask
    b = prepare_ticket(encode(manifest(title="other title")), dump_tensors(mask, {"architecture": ARCH}))
    assert a.id == b.id


def test_prepare_init_only_and_both_agree() -> None:
    init_bytes = dump_tensors(seed_init())
    only = prepare_ticket(encode(manifest(init={"scheme": "kaiming_normal"})), mask_bytes(), init_bytes)
    both = prepare_ticket(encode(manifest()), mask_bytes(), init_bytes)
    assert only.init_digest == both.init_digest
    assert only.id != both.id  # the seed is part of the id
    assert only.init_bytes == init_bytes


def test_prepare_both_disagree() -> None:
    with pytest.raises(InitMismatchError) as info:
        prepare_ticket(encode(manifest()), mask_bytes(), dump_tensors(seed_init(4)))
    assert info.value.code == "init_mismatch"


def test_prepare_rewind_needs_init() -> None:
    m = manifest(init={"scheme": "kaiming_normal", "seed": 3, "rewind_step": 100})
    with pytest.raises(LotteryError) as info:
        prepare_ticket(encode(m), mask_bytes())
    assert info.value.code == "init_required"
    # With the (rewound) init uploaded, the seed no longer has to regenerate it.
    rewound = {k: v + 0.01 for k, v in seed_init().items()}
    assert prepare_ticket(encode(m), mask_bytes(), dump_tensors(rewound)).manifest.init.rewind_step == 100


@pytest.mark.parametrize(
    "over, mask, init, error",
    [
        ({"init": {"scheme": "kaiming_normal"}}, None, None, InvalidManifestError),
        ({"task": "cifar1000"}, None, None, UnknownTaskError),
        ({"architecture": "lenet_x"}, None, None, UnknownArchitectureError),
        ({"init": {"scheme": "zeros", "seed": 1}}, None, None, UnknownInitSchemeError),
        ({"recipe": {"lr": 0.1, "batch_size": 8, "steps": 200_000}}, None, None, InvalidRecipeError),
        ({}, b"garbage!" * 4, None, InvalidSafetensorsError),
        ({}, dump_tensors({"fc1.weight": torch.ones(32, 64, dtype=torch.bool)}), None, InvalidMaskError),
        ({}, None, dump_tensors({"fc1.weight": torch.zeros(32, 64)}), InvalidInitError),
    ],
)
def test_prepare_rejects(over: dict[str, Any], mask: bytes | None, init: bytes | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        prepare_ticket(encode(manifest(**over)), mask if mask is not None else mask_bytes(), init)


def test_ticket_folder_round_trip(tmp_path: Path) -> None:
    m = Manifest.model_validate(manifest(tags=["mlp", "imp"]))
    t = prepare_ticket(m, mask_bytes())
    TicketFolder.write(tmp_path / "t", m, t.mask, t.init)
    m2, mask2, init2 = TicketFolder.read(tmp_path / "t")
    assert m2 == m
    assert tensors_digest(mask2) == t.mask_digest and init2 is not None and tensors_digest(init2) == t.init_digest
    data = (tmp_path / "t" / "mask.safetensors").read_bytes()
    assert prepare_ticket(m, data).id == t.id
    TicketFolder.write(tmp_path / "u", m, t.mask)
    assert TicketFolder.read(tmp_path / "u")[2] is None
