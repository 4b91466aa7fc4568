"""Import OpenLTH lottery runs (facebookresearch/open_lth) as Nirvana ticket folders.

An OpenLTH run (``open_lth.py lottery ...``) lives in ``lottery_<md5>/replicate_<r>/``:

- ``level_<L>/main/mask.pth``: ``torch.save`` of ``{name: 0/1 int tensor}``;
- ``level_<L>/main/model_ep<E>_it<I>.pth``: the model's ``state_dict`` at the level's
  start step (the level-0 one is the unpruned theta_0; later levels hold it *masked*);
- ``level_<L>/main/sparsity_report.json`` ``{"total", "unpruned"}``;
- ``level_<L>/main/logger``: CSV lines ``<metric>,<iteration>,<value>``;
- ``level_0/main/hparams.log``: ``Hparams.display`` sections (``    * key => value``);
- ``level_pretrain/main/model_ep<E>_it<I>.pth``: theta_k with ``--rewinding_steps``.

Each level becomes one folder: the mask as BOOL, the init as theta_0 (or theta_k) under
our parameter names (paired by module order, every shape checked:
``nirvana.lottery.interop.torch_prune.pair_state_dict``), the recipe read from ``hparams.log``, and the
level's last ``test_accuracy`` as the claim. ``.pth`` files are read with
``torch.load(weights_only=True)`` only: anything that is not plain tensors in dicts is
refused, never unpickled. Every level is validated with ``prepare_ticket`` before
anything is written, so a failing level writes nothing at all.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nirvana.lottery.models.architectures import ArchitectureInfo, describe
from nirvana.lottery.tickets.files import dump_tensors
from nirvana.lottery.interop.torch_prune import pair_state_dict
from nirvana.lottery.pruning.masks import sparsity_report
from nirvana.lottery.data.tasks import get_task
from nirvana.lottery.tickets.manifest import InitSpec, Manifest, TicketFolder, file_metadata, prepare_ticket
from nirvana.lottery.interop.openlth_hparams import (
    SCHEMES,
    OpenLTHImportError,
    map_model_name,
    parse_hparams_log,
    recipe_from_hparams,
    section,
)

__all__ = ["ImportedLevel", "import_run", "read_run"]


@dataclass(frozen=True)
class ImportedLevel:
    """One level, validated: where it came from and the ticket folder's contents."""

    replicate: int
    level: int
    folder_name: str
    manifest: Manifest
    mask: dict[str, torch.Tensor]
    init: dict[str, torch.Tensor]
    density: float


def load_pth(path: Path) -> dict[str, torch.Tensor]:
    """A ``.pth`` holding ``{str: Tensor}``, via ``torch.load(weights_only=True)``.

    Raises ``OpenLTHImportError`` for a missing file, a pickle that needs anything but
    tensors and plain containers (nothing of it is executed), or another structure.
    """
    if not path.is_file():
        raise OpenLTHImportError(f"missing {path}")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, zip errors...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OpenLTHImportError(
            f"{path}: refused to load (only tensors in plain dicts are read, with "
            f"torch.load(weights_only=True)): {first}"
        ) from None
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise OpenLTHImportError(f"{path}: expected a dict of parameter name -> tensor")
    return dict(obj)


def read_accuracy(logger: Path) -> float:
    """The ``test_accuracy`` at the highest iteration of an OpenLTH ``logger`` file."""
    if not logger.is_file():
        raise OpenLTHImportError(f"missing {logger} (the level did not finish training?)")
    found: dict[int, float] = {}
    for line in logger.read_text().splitlines():
        parts = line.strip().split(",")
        if len(parts) == 3 and parts[0] == "test_accuracy":
            found[int(parts[1])] = float(parts[2])
    if not found:
        raise OpenLTHImportError(f"{logger} has no test_accuracy line")
    return found[max(found)]


# ------------------------------------------------------------------------- a level


def _convert_mask(raw: dict[str, torch.Tensor], names: dict[str, str], info: ArchitectureInfo, where: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for their, m in raw.items():
        if their not in names:
            raise OpenLTHImportError(f"{where}: mask entry {their!r} is not a tensor of the model")
        if bool(((m != 0) & (m != 1)).any()):
            raise OpenLTHImportError(f"{where}: mask {their!r} has values other than 0 and 1")
        out[names[their]] = m.to(torch.bool).contiguous()
    # Our mask order is the architecture's parameter order, whatever OpenLTH's was.
    return {n: out[n] for n in info.prunable_names() if n in out} | out


def _convert_init(raw: dict[str, torch.Tensor], names: dict[str, str]) -> dict[str, torch.Tensor]:
    return {
        names[k]: (v.to(torch.float32) if v.is_floating_point() else v).contiguous() for k, v in raw.items()
    }


def _check_start_checkpoint(level_model: dict[str, torch.Tensor], names: dict[str, str],
                            init: dict[str, torch.Tensor], mask: dict[str, torch.Tensor], where: Path) -> None:  # fmt: skip
    """OpenLTH saves each level's start weights as the shared init times the mask; a
    folder mixing runs (or levels of different runs) fails here."""
    for their, t in level_model.items():
        ours = names.get(their)
        expected = init[ours] * mask[ours] if ours in mask else init.get(ours) if ours else None
        if expected is None or not torch.equal(t.to(expected.dtype), expected):
            raise OpenLTHImportError(f"{where}: {their!r} is not the run's init under this level's mask")


def _model_file(folder: Path, step: int, per_epoch: int) -> Path:
    return folder / f"model_ep{step // per_epoch}_it{step % per_epoch}.pth"


def _read_replicate(rep: Path, run_name: str, hp_text: str) -> list[ImportedLevel]:
    hp = parse_hparams_log(hp_text)
    model_name = section(hp, "Model Hyperparameters").get("model_name", "")
    architecture, task_name = map_model_name(model_name)
    task = get_task(task_name)
    info = describe(architecture, task.input_shape, task.num_classes)
    recipe, rewind, notes = recipe_from_hparams(hp, task)
    per_epoch = math.ceil(task.train_size / recipe.batch_size)
    init_candidates = (
        [_model_file(rep / "level_pretrain" / "main", rewind, per_epoch), _model_file(rep / "level_0" / "main", rewind, per_epoch)]
        if rewind else [_model_file(rep / "level_0" / "main", 0, per_epoch)]
    )  # fmt: skip
    init_path = next((p for p in init_candidates if p.is_file()), init_candidates[0])
    raw_init = load_pth(init_path)
    names = pair_state_dict(raw_init, info, source=str(init_path))
    init = _convert_init(raw_init, names)
    model_init = section(hp, "Model Hyperparameters").get("model_init", "kaiming_normal")
    scheme = model_init if model_init in SCHEMES else "kaiming_normal"
    if model_init not in SCHEMES:
        notes.append(f"OpenLTH init {model_init}; reinit controls use kaiming_normal")
    pruning = hp.get("Pruning Hyperparameters", {})
    levels = sorted(
        (int(d.name.split("_")[1]), d / "main") for d in rep.glob("level_*") if re.fullmatch(r"level_[0-9]+", d.name)
    )
    out = []
    for level, main in levels:
        mask = _convert_mask(load_pth(main / "mask.pth"), names, info, main / "mask.pth")
        start = _model_file(main, rewind, per_epoch)
        if start.is_file():
            _check_start_checkpoint(load_pth(start), names, init, mask, start)
        density = sparsity_report(mask, info).density
        _check_sparsity_report(main / "sparsity_report.json", mask)
        accuracy = read_accuracy(main / "logger")
        description = "; ".join([
            f"Imported from OpenLTH run {run_name}/{rep.name}/level_{level} ({model_name}, "
            f"{pruning.get('pruning_strategy', '?')} pruning_fraction={pruning.get('pruning_fraction', '?')})",
            *notes,
        ])  # fmt: skip
        manifest = Manifest(
            architecture=architecture,
            task=task_name,
            init=InitSpec(scheme=scheme, seed=None, rewind_step=rewind),
            recipe=recipe,
            claimed={"test_accuracy": accuracy},  # type: ignore[arg-type]
            title=f"OpenLTH {model_name} level {level} ({100 * density:.1f}% of weights)",
            description=description,
            tags=["openlth", "imp"] + (["rewind"] if rewind else []),
        )
        folder_name = f"{run_name}-{rep.name.replace('replicate_', 'r')}-level{level}"
        out.append(ImportedLevel(int(rep.name.split("_")[1]), level, folder_name, manifest, mask, init, density))
    if not out:
        raise OpenLTHImportError(f"{rep} has no level_<L> folders")
    return out


def _check_sparsity_report(path: Path, mask: dict[str, torch.Tensor]) -> None:
    if not path.is_file():
        return  # optional: the mask is the truth, the report only a cross-check
    try:
        report = json.loads(path.read_text())
        unpruned, total = float(report["unpruned"]), float(report["total"])
    except (ValueError, KeyError, TypeError) as exc:
        raise OpenLTHImportError(f"{path}: not an OpenLTH sparsity report ({exc})") from None
    kept = sum(int(m.sum()) for m in mask.values())
    if (unpruned, total) != (float(kept), float(sum(m.numel() for m in mask.values()))):
        raise OpenLTHImportError(f"{path} says {unpruned:.0f}/{total:.0f} kept, the mask {kept}")


# ---------------------------------------------------------------------------- a run


def _replicates(run_dir: Path) -> list[Path]:
    if re.fullmatch(r"replicate_[0-9]+", run_dir.name):
        return [run_dir]
    found = sorted(
        (d for d in run_dir.glob("replicate_*") if re.fullmatch(r"replicate_[0-9]+", d.name)),
        key=lambda d: int(d.name.split("_")[1]),
    )
    if not found:
        raise OpenLTHImportError(f"{run_dir} is not an OpenLTH lottery run: no replicate_<r> folders")
    return found


def _hparams_text(rep: Path) -> str:
    for candidate in [rep / "level_0" / "main" / "hparams.log", *sorted(rep.glob("level_*/main/hparams.log"))]:
        if candidate.is_file():
            return candidate.read_text()
    raise OpenLTHImportError(f"{rep}: no hparams.log (OpenLTH writes it in level_0/main)")


def read_run(run_dir: str | Path, *, replicate: int | None = None) -> list[ImportedLevel]:
    """Every level of every replicate (or only ``replicate``) of an OpenLTH run,
    converted and validated with ``prepare_ticket``; writes nothing.

    ``run_dir`` is a ``lottery_<md5>`` folder or one of its ``replicate_<r>`` folders.

    Raises:
        OpenLTHImportError: the layout, a ``.pth`` (unsafe or malformed), hparams or
            logger; ``StateDictMismatchError`` (names or shapes); any ``LotteryError``
            of ``prepare_ticket`` (unknown architecture or task, invalid mask or init).
    """
    # Resolved, so `import-openlth .` names its folders after the run, not after ''.
    root = Path(run_dir).resolve()
    if not root.is_dir():
        raise OpenLTHImportError(f"{root} is not a folder")
    run_name = root.parent.name if re.fullmatch(r"replicate_[0-9]+", root.name) else root.name
    reps = [r for r in _replicates(root) if replicate is None or r.name == f"replicate_{replicate}"]
    if not reps:
        raise OpenLTHImportError(f"{root} has no replicate_{replicate}")
    levels = [lvl for rep in reps for lvl in _read_replicate(rep, run_name, _hparams_text(rep))]
    for lvl in levels:
        meta = file_metadata(lvl.manifest.architecture)
        # What the server will check, here, so a bad level stops the import early.
        # No step limit: the server that receives the ticket applies its own.
        prepare_ticket(lvl.manifest, dump_tensors(lvl.mask, meta), dump_tensors(lvl.init, meta), max_steps=2**62, max_examples=2**62)
    return levels


def import_run(run_dir: str | Path, out: str | Path, *, replicate: int | None = None) -> list[Path]:
    """Convert an OpenLTH run into ticket folders under ``out``; returns their paths.

    All-or-nothing: every level is read and validated first (``read_run``), written to
    a temporary folder inside ``out``, then moved into place. A target folder that
    already exists is an error, raised before anything is written.
    """
    levels = read_run(run_dir, replicate=replicate)
    dest = Path(out)
    targets = [dest / lvl.folder_name for lvl in levels]
    for target in targets:
        if target.exists():
            raise OpenLTHImportError(f"{target} already exists; remove it or choose another --out")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".import-openlth-") as tmp:
        for lvl in levels:
            TicketFolder.write(Path(tmp) / lvl.folder_name, lvl.manifest, lvl.mask, lvl.init)
        for lvl, target in zip(levels, targets, strict=True):
            shutil.move(str(Path(tmp) / lvl.folder_name), target)
    return targets
