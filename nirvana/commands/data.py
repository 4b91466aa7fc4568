"""``nirvana data fetch TASK`` and ``nirvana data ls``: the data of the file-backed tasks
(``fashion-mnist``, ``mnist``, ``cifar10``) on this machine. Nothing else downloads
data: a server or ``nirvana find`` missing a task says to run this."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from nirvana.commands._common import reports_errors
from nirvana.commands.tickets import _table

data_app = typer.Typer(help="Task data on this machine: fetch the published files, list what is there.", no_args_is_help=True)

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory [default: $NIRVANA_DATA_DIR, else $NIRVANA_HOME/data].", show_default=False),
]


def _data_dir(value: Path | None) -> Path:
    from nirvana.paths import default_data_dir

    return value if value is not None else default_data_dir()


@data_app.command("fetch")
@reports_errors
def fetch_command(
    tasks: Annotated[list[str], typer.Argument(help="fashion-mnist, mnist, cifar10 (one or more).")],
    data_dir: DataDirOption = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", envvar="NIRVANA_DATA_BASE_URL", help="Fetch from a mirror instead of the publisher."),
    ] = None,
) -> None:
    """Download the tasks' canonical files, check their published MD5s, resume what an
    interruption left."""
    from nirvana.datasets import dataset, fetch
    from nirvana.progress import bytes_bar

    for task in tasks:
        dataset(task)  # an unknown name fails before anything downloads
    root = _data_dir(data_dir)
    bars: list[Any] = []

    def progress(name: str) -> Callable[[int, int | None], None]:
        bars.append(bytes_bar(name))
        return cast("Callable[[int, int | None], None]", bars[-1].update_to)

    try:
        for task in tasks:
            folder = fetch(task, root, base_url=base_url, progress=progress)
            typer.echo(f"{task}: {folder}")
    finally:
        for bar in bars:
            bar.close()


@data_app.command("ls")
@reports_errors
def ls(data_dir: DataDirOption = None) -> None:
    """Every task, whether its data is here, and where `nirvana data fetch` puts it."""
    from nirvana.datasets import DATASETS
    from nirvana.lottery.data.tasks import is_available, list_tasks

    root = _data_dir(data_dir)
    rows = []
    for spec in list_tasks():
        here = is_available(spec.name, root)
        if spec.name in DATASETS:
            where = str(root / spec.name)
            status = "yes" if here else f"no: nirvana data fetch {spec.name}"
        else:
            where, status = "(generated or bundled)", "yes" if here else "no"
        rows.append([spec.name, status, where])
    typer.echo(_table(["TASK", "AVAILABLE", "FOLDER"], rows))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
