"""Real ticket files for tests, made with the lottery package (no fixtures on disk)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch

from nirvana.lottery.models.architectures import describe
from nirvana.lottery.models.init import generate_init
from nirvana.lottery.data.tasks import get_task
from nirvana.lottery.tickets.files import dump_tensors


@dataclass
class TicketFiles:
    manifest: dict[str, Any]
    mask: dict[str, torch.Tensor]
    init: dict[str, torch.Tensor] = field(default_factory=dict)

    def manifest_bytes(self) -> bytes:
        return json.dumps(self.manifest).encode()

    def mask_bytes(self) -> bytes:
        return dump_tensors(self.mask)

    def init_bytes(self) -> bytes:
        return dump_tensors(self.init)

    def multipart(self, *, with_init: bool = False) -> dict[str, tuple[str, bytes, str]]:
        files = {
            "manifest": ("ticket.json", self.manifest_bytes(), "application/json"),
            "mask": ("mask.safetensors", self.mask_bytes(), "application/octet-stream"),
        }
        if with_init:
            files["init"] = ("init.safetensors", self.init_bytes(), "application/octet-stream")
        return files


def make_ticket(
    *,
    architecture: str = "lenet_32_16",
    task: str = "digits",
    seed: int = 0,
    density: float = 0.5,
    mask_seed: int = 0,
    claimed: float = 0.9,
    steps: int = 60,
    tags: list[str] | None = None,
    title: str = "a test ticket",
) -> TicketFiles:
    """A valid ticket: a random mask at ``density`` on the seed's init."""
    spec = get_task(task)
    info = describe(architecture, spec.input_shape, spec.num_classes)
    generator = torch.Generator().manual_seed(mask_seed)
    mask = {
        p.name: torch.rand(p.shape, generator=generator) < density for p in info.parameters if p.prunable
    }
    manifest = {
        "architecture": architecture,
        "task": task,
        "init": {"scheme": "kaiming_normal", "seed": seed, "rewind_step": 0},
        "recipe": {"optimizer": "adam", "lr": 0.003, "batch_size": 64, "steps": steps, "data_seed": 0},
        "claimed": {"test_accuracy": claimed},
        "method": "random",
        "title": title,
        "tags": tags or ["test"],
    }
    return TicketFiles(manifest, mask, generate_init(architecture, spec, "kaiming_normal", seed))
