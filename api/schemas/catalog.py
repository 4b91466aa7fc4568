"""Tasks and architectures: what tickets can be made of."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class TaskRead(BaseModel):
    name: str
    description: str
    input_shape: list[int]
    num_classes: int
    train_size: int
    test_size: int
    metric: str
    available: bool
    ticket_count: int
    default_recipe: dict[str, Any]


class TaskList(BaseModel):
    items: list[TaskRead]


class ParameterRead(BaseModel):
    name: str
    shape: list[int]
    prunable: bool
    # Batch-norm running statistics: in the state_dict (and so in init.safetensors),
    # never in a mask, and not counted in ``total``.
    buffer: bool = False


class ArchitectureRead(BaseModel):
    name: str
    task: str
    parameters: list[ParameterRead]
    total: int
    prunable: int
