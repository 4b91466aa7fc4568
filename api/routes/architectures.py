"""Architectures: the parameters a mask and an init must provide."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.errors import ProblemError
from api.openapi import problems
from api.schemas.catalog import ArchitectureRead, ParameterRead
from nirvana.lottery.models.architectures import describe
from nirvana.lottery.data.tasks import get_task, list_tasks
from nirvana.lottery.errors import UnknownArchitectureError, UnknownTaskError

router = APIRouter(tags=["architectures"])


_TASK = Query(description="sizes the input and output layers", json_schema_extra={"enum": [t.name for t in list_tasks()]})


@router.get("/architectures/{name}", response_model=ArchitectureRead, responses=problems(404))
def read_architecture(name: str, task: Annotated[str, _TASK]) -> ArchitectureRead:
    """Each parameter's ``state_dict`` name, shape and whether it is prunable, for
    ``name`` built for ``task``; 404 when either is unknown (or cannot be built so)."""
    try:
        spec = get_task(task)
        info = describe(name, spec.input_shape, spec.num_classes)
    except (UnknownTaskError, UnknownArchitectureError) as exc:
        raise ProblemError(404, exc.code, exc.detail) from None
    return ArchitectureRead(
        name=name,
        task=task,
        parameters=[
            ParameterRead(name=p.name, shape=list(p.shape), prunable=p.prunable, buffer=p.buffer) for p in info.parameters
        ],
        total=info.total,
        prunable=info.prunable,
    )
