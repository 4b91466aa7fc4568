"""Architectures: the parameters a mask and an init must provide."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.schemas.catalog import ArchitectureRead, ParameterRead
from nirvana.lottery.models.architectures import describe
from nirvana.lottery.data.tasks import get_task

router = APIRouter(tags=["architectures"])


@router.get("/architectures/{name}", response_model=ArchitectureRead)
def read_architecture(name: str, task: Annotated[str, Query(description="sizes the input and output layers")]) -> ArchitectureRead:
    """Each parameter's ``state_dict`` name, shape and whether it is prunable, for
    ``name`` built for ``task``."""
    spec = get_task(task)
    info = describe(name, spec.input_shape, spec.num_classes)
    return ArchitectureRead(
        name=name,
        task=task,
        parameters=[
            ParameterRead(name=p.name, shape=list(p.shape), prunable=p.prunable, buffer=p.buffer) for p in info.parameters
        ],
        total=info.total,
        prunable=info.prunable,
    )
