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
    """Validate the files against the ticket's architecture, build it for its task,
    load the init, and prune every masked parameter with
    ``torch.nn.utils.prune.custom_from_mask`` (``nirvana.lottery.interop.torch_prune.
    pruned_model``, as ``load_ticket`` does). Files are read with safetensors, never
    ``torch.load``."""
    from nirvana.lottery.interop.torch_prune import pruned_model
    from nirvana.lottery.tickets.files import load_tensors

    mask = load_tensors(mask_path.read_bytes())
    model = pruned_model(ticket["architecture"], ticket["task"], mask, load_tensors(init_path.read_bytes()), device=device)
    return model, {name: keep.to(device) for name, keep in mask.items()}


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
