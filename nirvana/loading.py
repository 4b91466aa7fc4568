"""Turning downloaded ticket files into what users hold: a ``ticket.json`` dict and a
pruned PyTorch model. torch and lottery are imported lazily, so ``import nirvana``
stays light."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

MANIFEST_FIELDS = (
    "architecture", "task", "init", "recipe", "claimed", "method",
    "title", "description", "tags", "license", "parent",
)  # fmt: skip


def build_pruned_model(
    ticket: Mapping[str, Any], mask_path: Path, init_path: Path, *, device: str = "cpu"
) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """Build the ticket's architecture for its task, load the init, and prune every
    masked parameter with ``torch.nn.utils.prune.custom_from_mask``. Files are read
    with safetensors, never ``torch.load``."""
    import torch

    from nirvana.lottery.models.architectures import build_model
    from nirvana.lottery.tickets.files import load_tensors
    from nirvana.lottery.interop.torch_prune import apply_prune_masks
    from nirvana.lottery.data.tasks import get_task

    spec = get_task(ticket["task"])
    model = build_model(ticket["architecture"], tuple(spec.input_shape), spec.num_classes)
    model.load_state_dict(load_tensors(init_path.read_bytes()), strict=True)
    model.to(device)
    mask = {name: t.to(device=device, dtype=torch.bool) for name, t in load_tensors(mask_path.read_bytes()).items()}
    apply_prune_masks(model, mask)  # the same pruning people get from nirvana.lottery.interop.torch_prune
    return model, mask


def manifest_of(ticket: Mapping[str, Any]) -> dict[str, Any]:
    """The ``ticket.json`` of a ticket JSON: the stored manifest when the server sends
    it, else rebuilt from the ticket's fields; ``None`` fields are left out."""
    stored = ticket.get("manifest")
    source = stored if isinstance(stored, Mapping) and stored else ticket
    return {k: source[k] for k in MANIFEST_FIELDS if source.get(k) is not None}


def relative_link(link: str) -> str:
    # links are absolute paths (/api/v1/...); the HTTP client's base already has /api/v1.
    return link.split("/api/v1", 1)[1] if "/api/v1" in link else link


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return "-" in value  # 32 bare hex chars are more likely a ticket id prefix


def tensor_bytes(value: Mapping[str, torch.Tensor] | bytes) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    from nirvana.lottery.tickets.files import dump_tensors

    return dump_tensors(value)
