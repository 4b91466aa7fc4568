"""Commands that talk to a running server over HTTP: ``push``, ``pull``, ``tickets``,
``show``, ``tasks``, ``status``, ``wait``. Server from ``--url``/``NIRVANA_URL``,
token from ``--token``/``NIRVANA_TOKEN``/``$NIRVANA_HOME/token``."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nirvana.commands._common import EXIT_ERROR, TokenOption, UrlOption, fail, make_client, reports_errors
from nirvana.hub_types import VerificationInfo
from nirvana.states import VerificationState

if TYPE_CHECKING:
    from nirvana.client import Client

class Verdict(str, enum.Enum):
    winning = "winning"
    not_winning = "not_winning"
    not_reproduced = "not_reproduced"
    pending = "pending"


class Sort(str, enum.Enum):
    sparsity = "sparsity"
    sparsest = "-sparsity"
    accuracy = "accuracy"
    most_accurate = "-accuracy"
    created = "created"
    newest = "-created"
    rank = "rank"


IdArgument = Annotated[str, typer.Argument(help="Ticket id: the full id or a unique prefix of 12+ characters.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the server's JSON instead of a table.")]


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.2f}%"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
             for row in [headers, *rows]]  # fmt: skip
    return "\n".join(lines)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _refuse_unknown_filters(client: Client, *, task: str | None, arch: str | None) -> None:
    """An empty list may be a typo: ask the server whether ``task`` and ``arch`` exist,
    and fail naming what does (asked only when nothing matched, so it costs a good
    listing nothing)."""
    if task is not None:
        known = sorted(t.name for t in client.tasks())
        if task not in known:
            raise fail(f"unknown task {task!r}; known: {', '.join(known)} (unknown_task)")
    if arch is not None:
        # Architectures are families (lenet_<widths>), not a list: the server's
        # description of this one on some task says whether it exists.
        client.architecture(arch, task=task or client.tasks()[0].name)


@reports_errors
def push(
    folder: Annotated[Path, typer.Argument(help="A ticket folder: ticket.json, mask.safetensors[, init.safetensors].")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Upload a ticket folder; its verification is queued."""
    with make_client(url, token) as client:
        ticket = client.push(folder)
    state = "new" if ticket.created else "already there"
    typer.echo(f"{ticket.id}  ({state})")
    for verification in ticket.verifications:
        typer.echo(f"verification {verification.id}: {verification.state.value}")
    typer.echo(f"follow it with: nirvana wait {ticket.short_id}", err=True)


@reports_errors
def pull(
    id: IdArgument,
    out: Annotated[Path | None, typer.Option("--out", help="Folder to write [default: ./<short id>].")] = None,
    force_download: Annotated[
        bool, typer.Option("--force-download", help="Fetch the files again even when the cache holds them.")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Download a ticket's ticket.json, mask.safetensors and init.safetensors."""
    with make_client(url, None) as client:
        folder = client.download(id, out, progress=True, force_download=force_download)
    typer.echo(str(folder))


@reports_errors
def tickets(
    task: Annotated[str | None, typer.Option(help="Only this task.")] = None,
    arch: Annotated[str | None, typer.Option(help="Only this architecture.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only tickets with this tag.")] = None,
    verified: Annotated[bool | None, typer.Option("--verified/--unverified", help="Only (un)verified tickets.")] = None,
    verdict: Annotated[Verdict | None, typer.Option(help="Only tickets with this verdict (pending: none yet).")] = None,
    sort: Annotated[Sort, typer.Option(help="rank: winning first, sparsest first.")] = Sort.newest,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 20,
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """List tickets, newest first unless --sort says otherwise. An unknown --task or
    --arch is an error naming what exists."""
    with make_client(url, None) as client:
        items = list(client.tickets(task=task, arch=arch, tag=tag, verified=verified, sort=sort.value, limit=limit,
                                    verdict=verdict.value if verdict is not None else None))  # fmt: skip
        if not items:
            _refuse_unknown_filters(client, task=task, arch=arch)
    if as_json:
        _print_json([t.model_dump(mode="json") for t in items])
        return
    if not items:
        typer.echo("no tickets match", err=True)
        return
    # The title comes last and whole: people tell tickets apart by it.
    rows = [
        [t.short_id, t.task, t.architecture, _pct(t.sparsity), _pct(t.accuracy),
         (t.verdict or "pending").replace("_", " "), t.title]
        for t in items
    ]  # fmt: skip
    typer.echo(_table(["ID", "TASK", "ARCHITECTURE", "SPARSITY", "ACCURACY", "VERDICT", "TITLE"], rows))


@reports_errors
def show(id: IdArgument, as_json: JsonOption = False, url: UrlOption = None) -> None:
    """Everything about one ticket: claim, sparsity per layer, verifications."""
    with make_client(url, None) as client:
        t = client.ticket(id)
    if as_json:
        _print_json(t.model_dump(mode="json"))
        return
    fields = [
        ("id", t.id),
        ("title", t.title),
        ("task", t.task),
        ("architecture", t.architecture),
        ("init", f"{t.init.scheme} seed={t.init.seed} rewind_step={t.init.rewind_step}"),
        ("sparsity", f"{_pct(t.sparsity)} ({t.remaining} of {t.prunable} prunable weights kept)"),
        ("claimed", _pct(t.claimed.test_accuracy)),
        ("verified", _pct(t.verified_accuracy) if t.verified else "no"),
        ("verdict", (t.verdict or "pending").replace("_", " ")),
        ("tags", ", ".join(t.tags) or "-"),
    ]
    typer.echo("\n".join(f"{name:<13}{value}" for name, value in fields))
    if t.layers:
        typer.echo("\n" + _table(
            ["LAYER", "KEPT", "TOTAL", "DENSITY"],
            [[name, str(v.remaining), str(v.total), _pct(v.density)] for name, v in t.layers.items()],
        ))  # fmt: skip
    if t.verifications:
        typer.echo("\n" + _table(
            ["VERIFICATION", "STATE", "PROGRESS", "ATTEMPTS"],
            [[v.id, v.state.value, _pct(v.progress), str(v.attempts)] for v in t.verifications],
        ))  # fmt: skip
        done = [v for v in t.verifications if v.state is VerificationState.SUCCEEDED and v.result]
        if done and done[-1].result is not None:
            typer.echo("\n" + _verdict_lines(done[-1].result))


@reports_errors
def tasks(as_json: JsonOption = False, url: UrlOption = None) -> None:
    """The tasks the server knows and whether their data is available there."""
    with make_client(url, None) as client:
        items = client.tasks()
    if as_json:
        _print_json([t.model_dump(mode="json") for t in items])
        return
    rows = [
        [t.name, "x".join(str(d) for d in t.input_shape), str(t.num_classes),
         f"{t.train_size}/{t.test_size}", "yes" if t.available else f"no: nirvana data fetch {t.name}",
         str(t.ticket_count)]
        for t in items
    ]  # fmt: skip
    typer.echo(_table(["TASK", "INPUT", "CLASSES", "TRAIN/TEST", "AVAILABLE", "TICKETS"], rows))


def _stat(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    return f"{100 * s['mean']:.2f}" + (f" ± {100 * s['std']:.2f}" if s.get("n", 1) > 1 else "") + "%"


def _verdict_lines(result: dict[str, Any]) -> str:
    """Every arm as mean ± std, the verdict and its reasons (schema 1: the single runs)."""
    if result.get("schema", 1) < 2:
        runs = result.get("runs") or {}
        rows = [[name.replace("_", " "), _pct(r.get("test_accuracy")), "-", "1"] for name, r in runs.items()]
        verdict = "not_reproduced" if not result.get("reproduced") else "winning" if result.get("winning") else "not_winning"
        reasons: list[str] = ["an earlier protocol (result schema 1): one run per arm"]
    else:
        arms = result.get("arms") or {}
        rows = [[name.replace("_", " "), _stat(a.get("early_stop_test_accuracy")), _stat(a.get("test_accuracy")),
                 str((a.get("test_accuracy") or {}).get("n", "-"))] for name, a in arms.items()]  # fmt: skip
        verdict, reasons = str(result.get("verdict")), list(result.get("reasons") or [])
        if result.get("instability") is not None:
            reasons.append(f"instability (error barrier between two ticket replicates): {100 * result['instability']:.2f} points")
    table = _table(["ARM", "EARLY-STOP ACCURACY", "FINAL ACCURACY", "N"], rows)
    return "\n".join([table, f"verdict: {verdict.replace('_', ' ')}", *(f"  - {r}" for r in reasons)])


def _summary(v: VerificationInfo) -> str:
    line = f"verification {v.id}: {v.state.value} ({_pct(v.progress)}, attempt {v.attempts})"
    result = v.result or {}
    if v.state is VerificationState.SUCCEEDED and result:
        line += "\n" + _verdict_lines(result)
    if v.error:
        line += f"\n  error: {v.error}"
    return line


@reports_errors
def status(
    id: Annotated[str, typer.Argument(help="A verification id, or a ticket id (its latest verification).")],
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Show a verification's state once."""
    with make_client(url, None) as client:
        v = client.resolve_verification(id)
    _print_json(v.model_dump(mode="json")) if as_json else typer.echo(_summary(v))


@reports_errors
def wait(
    id: Annotated[str, typer.Argument(help="A ticket id or a verification id.")],
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 2.0,
    url: UrlOption = None,
) -> None:
    """Follow a verification with a progress bar until it finishes (exit 1 unless it succeeds)."""
    with make_client(url, None) as client:
        v = client.wait(id, timeout=timeout, poll_interval=interval, progress=True)
    typer.echo(_summary(v))
    if v.state is not VerificationState.SUCCEEDED:
        raise typer.Exit(EXIT_ERROR)


@reports_errors
def verify(
    id: IdArgument,
    task: Annotated[str | None, typer.Option(help="The other task to retrain the ticket on.")] = None,
    steps: Annotated[int | None, typer.Option(help="Override the task's default recipe's steps.")] = None,
    again: Annotated[
        bool, typer.Option("--again", help="Queue it once more on its own task (its last run there was cancelled or failed).")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Queue a transfer evaluation: retrain a stored ticket on another task (needs the
    verify scope); or, with --again, verify it once more on its own task (its uploader
    or an admin). Follow it with `nirvana wait VERIFICATION_ID`."""
    if again == (task is not None) or (again and steps is not None):
        raise fail("give either --task (and maybe --steps) or --again")
    with make_client(url, token) as client:
        if task is None:
            queued = client.verify_again(id)
        else:
            queued = client.verify_on(id, task=task, recipe=_recipe_with_steps(client, task, steps))
    typer.echo(f"verification {queued.id}: {queued.state.value} on {queued.task}")
    typer.echo(f"follow it with: nirvana wait {queued.id}", err=True)


def _recipe_with_steps(client: Client, task: str, steps: int | None) -> dict[str, Any] | None:
    """``task``'s default recipe with ``steps`` (None: the server's default recipe)."""
    if steps is None:
        return None
    defaults = {t.name: t.default_recipe for t in client.tasks()}
    if task not in defaults:
        raise fail(f"unknown task {task!r}; known: {', '.join(sorted(defaults))}")
    return {**defaults[task], "steps": steps}


def register(app: typer.Typer) -> None:
    for command in (push, pull, tickets, show, tasks, status, wait, verify):
        app.command(command.__name__)(command)
