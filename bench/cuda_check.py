"""One short check for a GPU machine: init determinism and training speed on CUDA.

1. Determinism, for lenet_300_100 (fashion-mnist shape), conv4 and resnet20 (cifar10
   shape): ``generate_init`` on the CPU must equal ``generate_init`` called with the
   device as the default device (bitwise, by ``tensors_digest``); the weights of a
   model built on the device and loaded with that init must come back bitwise equal;
   a forward pass (eval mode) on the same batch is compared with the CPU's, once with
   PyTorch's defaults (TF32 convolutions on Ampere+) and once with TF32 off. The other
   seeded draws (``random_mask_like``, the training ``BatchSampler``) must give the
   same tensors with the device as the default / target device.
2. Speed: steps/s of ``nirvana.lottery.training.loop.train`` (20% mask) vs the plain loop of
   ``bench/train_loop.py`` on the device, best of ``--rounds``.

Prints the device name and a table; exits 1 if a bitwise check fails, 0 otherwise,
and 0 with a message when CUDA is absent. ``--device cpu`` runs the same code on the
CPU (for testing the script where there is no GPU; use small ``--steps``).

    python bench/cuda_check.py [--device cuda] [--steps 500] [--conv-steps 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nirvana.lottery.models.architectures import build_model  # noqa: E402
from nirvana.lottery.tickets.digests import tensors_digest  # noqa: E402
from nirvana.lottery.models.init import generate_init  # noqa: E402
from nirvana.lottery.pruning.masks import random_mask_like  # noqa: E402
from nirvana.lottery.data.tasks import TaskSpec, get_task  # noqa: E402
from nirvana.lottery.training.loop import BatchSampler  # noqa: E402
from train_loop import make_case, ticket_mask, time_case  # noqa: E402

MODELS = {"lenet_300_100": "fashion-mnist", "conv4": "cifar10", "resnet20": "cifar10"}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def forward_diff(arch: str, spec: TaskSpec, init: dict[str, torch.Tensor], device: torch.device) -> float:
    """Max |CPU logits - device logits| on one fixed batch of 64, eval mode."""
    x = torch.rand(64, *spec.input_shape, generator=torch.Generator().manual_seed(1))
    cpu = build_model(arch, spec.input_shape, spec.num_classes)
    cpu.load_state_dict(init)
    with torch.device(device):
        dev = build_model(arch, spec.input_shape, spec.num_classes)
    dev.load_state_dict(init)
    with torch.no_grad():
        a = cpu.eval()(x)
        b = dev.eval()(x.to(device)).cpu()
    return float((a - b).abs().max())


def set_tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def same(name: str, expected: str, make: Callable[[], dict[str, torch.Tensor]]) -> bool:
    """Whether ``make()`` digests to ``expected``; an exception is a failure, printed."""
    try:
        return tensors_digest({k: v.cpu() for k, v in make().items()}) == expected
    except Exception as exc:  # report every failing check, not just the first
        print(f"  {name}: {type(exc).__name__}: {exc}")
        return False


def determinism(arch: str, spec: TaskSpec, device: torch.device) -> dict[str, object]:
    init = generate_init(arch, spec, "kaiming_normal", 0)
    digest = tensors_digest(init)
    mask_digest = tensors_digest(random_mask_like(ticket_mask(arch, spec), seed=3))

    def init_in_ctx() -> dict[str, torch.Tensor]:
        with torch.device(device):  # a default device must not move the draw
            return generate_init(arch, spec, "kaiming_normal", 0)

    def mask_in_ctx() -> dict[str, torch.Tensor]:
        with torch.device(device):
            return random_mask_like(ticket_mask(arch, spec), seed=3)

    def roundtrip() -> dict[str, torch.Tensor]:
        with torch.device(device):
            model = build_model(arch, spec.input_shape, spec.num_classes)
        model.load_state_dict(init)
        return {k: v.detach() for k, v in model.state_dict().items()}
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    diff_default = forward_diff(arch, spec, init, device)
    set_tf32(False)
    diff_strict = forward_diff(arch, spec, init, device)
    set_tf32(tf32[1])
    torch.backends.cuda.matmul.allow_tf32 = tf32[0]
    return {
        "init_in_ctx": same("init@dev", digest, init_in_ctx),
        "weights_roundtrip": same("weights", digest, roundtrip),
        "mask": same("mask", mask_digest, mask_in_ctx),
        "diff_default": diff_default,
        "diff_strict": diff_strict,
        "digest": digest[:12],
    }


def sampler_same(device: torch.device) -> bool:
    """The training data order does not depend on the device."""
    cpu = BatchSampler(1000, 60, seed=7, device=torch.device("cpu"))
    dev = BatchSampler(1000, 60, seed=7, device=device)
    try:
        return all(torch.equal(cpu.next(), dev.next().cpu()) for _ in range(40))
    except Exception as exc:
        print(f"  BatchSampler: {type(exc).__name__}: {exc}")
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--steps", type=int, default=500, help="timed steps for lenet_300_100")
    parser.add_argument("--conv-steps", type=int, default=100, help="timed steps for conv4, resnet20")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"CUDA is not available here (torch {torch.__version__}); nothing to check. "
              "Run with --device cpu to exercise the script on the CPU.")
        return 0
    archs = [a.strip() for a in args.models.split(",") if a.strip()]
    print(f"device: {device_name(device)}; torch {torch.__version__}; "
          f"cuda {torch.version.cuda}; cudnn {torch.backends.cudnn.version() if device.type == 'cuda' else '-'}")
    ok = sampler_same(device)
    print(f"BatchSampler order same on cpu and {device}: {ok}")
    print(f"{'model':<15} {'init digest':<13} {'init@dev':>8} {'weights':>8} {'mask':>5} "
          f"{'|dlogit| default':>17} {'|dlogit| no-tf32':>17} {'plain/s':>9} {'train/s':>9} {'ratio':>6}")
    for arch in archs:
        spec = get_task(MODELS[arch])
        d = determinism(arch, spec, device)
        ok = ok and bool(d["init_in_ctx"]) and bool(d["weights_roundtrip"]) and bool(d["mask"])
        steps = args.steps if arch.startswith("lenet") else args.conv_steps
        r = time_case(make_case(arch, args.device), steps, args.rounds, device)
        print(f"{arch:<15} {d['digest']!s:<13} {d['init_in_ctx']!s:>8} {d['weights_roundtrip']!s:>8} "
              f"{d['mask']!s:>5} {d['diff_default']:>17.2e} {d['diff_strict']:>17.2e} "
              f"{r['plain']:>9.1f} {r['ours']:>9.1f} {r['ratio']:>6.3f}", flush=True)
    print("init@dev/weights/mask: bitwise equal to the CPU (must be True); |dlogit|: max abs "
          "logit difference to the CPU (kernels differ; not bitwise); ratio = plain/train time")
    print("ALL BITWISE CHECKS PASSED" if ok else "A BITWISE CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
