from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nirvana.lottery.tickets.digests import tensors_digest
from nirvana.lottery.errors import UnknownInitSchemeError
from nirvana.lottery.models.init import INIT_SCHEMES, generate_init
from nirvana.lottery.data.tasks import TaskSpec, get_task


def test_same_seed_equal_different_seed_differs(digits_spec: TaskSpec) -> None:
    a = generate_init("lenet_300_100", digits_spec, "kaiming_normal", 7)
    b = generate_init("lenet_300_100", digits_spec, "kaiming_normal", 7)
    c = generate_init("lenet_300_100", digits_spec, "kaiming_normal", 8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["fc1.weight"], c["fc1.weight"])


def test_init_does_not_depend_on_global_rng(digits_spec: TaskSpec) -> None:
    torch.manual_seed(1)
    a = generate_init("lenet_32", digits_spec, "glorot_normal", 3)
    torch.manual_seed(2)
    torch.rand(10)
    b = generate_init("lenet_32", digits_spec, "glorot_normal", 3)
    assert tensors_digest(a) == tensors_digest(b)


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_every_scheme_fills_state_dict(scheme: str, digits_spec: TaskSpec) -> None:
    init = generate_init("lenet_300_100", digits_spec, scheme, 0)
    assert list(init) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
    for t in init.values():
        assert t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous()
        assert bool(torch.isfinite(t).all())
    assert float(init["fc1.weight"].std()) > 0
    if scheme != "torch_default":
        assert not init["fc1.bias"].any()


def test_kaiming_normal_scale(digits_spec: TaskSpec) -> None:
    # OpenLTH's default: kaiming_normal_ with fan-in and gain sqrt(2): std = sqrt(2/fan_in).
    w = generate_init("lenet_300_100", digits_spec, "kaiming_normal", 0)["fc1.weight"]
    assert abs(float(w.std()) - (2 / 64) ** 0.5) < 0.01


def test_unknown_scheme(digits_spec: TaskSpec) -> None:
    with pytest.raises(UnknownInitSchemeError) as info:
        generate_init("lenet_300_100", digits_spec, "orthogonal_magic", 0)
    assert info.value.code == "unknown_init_scheme"


def test_same_init_in_another_process() -> None:
    code = (
        "from nirvana.lottery.models.init import generate_init; from nirvana.lottery.data.tasks import get_task;"
        "from nirvana.lottery.tickets.digests import tensors_digest;"
        "print(tensors_digest(generate_init('lenet_300_100', get_task('fashion-mnist'), 'kaiming_normal', 11)))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    here = tensors_digest(generate_init("lenet_300_100", get_task("fashion-mnist"), "kaiming_normal", 11))
    assert out.stdout.strip() == here
