"""Tasks: datasets with a fixed split, a metric and a default recipe."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import SessionDep, SettingsDep
from api.schemas.catalog import TaskList, TaskRead
from nirvana.lottery.data.tasks import is_available, list_tasks

router = APIRouter(tags=["tasks"])


@router.get("/tasks", response_model=TaskList)
def read_tasks(request: Request, session: SessionDep, settings: SettingsDep) -> TaskList:
    """Every task, whether its data is on this server, and how many tickets it has
    (counted at most every 10 s). A task whose data is absent is listed as
    unavailable, not an error."""
    counts = request.app.state.ticket_counts.get(session)
    return TaskList(
        items=[
            TaskRead(
                name=spec.name,
                description=spec.description,
                input_shape=list(spec.input_shape),
                num_classes=spec.num_classes,
                train_size=spec.train_size,
                test_size=spec.test_size,
                metric=spec.metric,
                available=is_available(spec.name, settings.task_data_dir),
                ticket_count=counts.get(spec.name, 0),
                default_recipe=spec.default_recipe.model_dump(mode="json"),
            )
            for spec in list_tasks()
        ]
    )
