"""The ticket wire format: manifest, tensor files, digests, ids, and the validation the
server runs on an upload before storing anything (``prepare_ticket``).

A ticket folder holds ``ticket.json`` (the ``Manifest``), ``mask.safetensors`` and,
optionally, ``init.safetensors``. The ticket id is the SHA-256 of the canonical JSON of
``{architecture, init_scheme, seed, rewind_step, init_digest, mask_digest}``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from nirvana.lottery.models.architectures import ArchitectureInfo, describe
from nirvana.lottery.tickets.digests import tensors_digest
from nirvana.lottery.errors import (
    InitMismatchError,
    InitRequiredError,
    InvalidClaimError,
    InvalidManifestError,
)
from nirvana.lottery.tickets.compact import decode_init, decode_mask, encode_init, encode_mask, is_kept_init, is_packed_mask, masked_init
from nirvana.lottery.tickets.files import FileBounds, dump_tensors, load_tensors
from nirvana.lottery.models.init import check_scheme, generate_init
from nirvana.lottery.pruning.masks import SparsityReport, sparsity_report, validate_init, validate_mask
from nirvana.lottery.data.tasks import get_task
from nirvana.lottery.training.recipes import MAX_EXAMPLES, Recipe, check_compute

__all__ = [
    "FORMAT_VERSION",
    "Claimed",
    "InitSpec",
    "Manifest",
    "PreparedTicket",
    "TicketFolder",
    "parse_manifest",
    "prepare_ticket",
    "short_id",
    "ticket_id",
]

FORMAT_VERSION = 1

Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,39}$")]


class InitSpec(BaseModel):
    """How to (re)generate the init: scheme and seed; ``rewind_step`` > 0 means the
    init is the weights after that many training steps and must be uploaded."""

    model_config = ConfigDict(extra="forbid")

    scheme: str = Field(default="kaiming_normal", max_length=50)
    # The ranges of the database columns (BIGINT, INTEGER) and of torch's seeds.
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    rewind_step: int = Field(default=0, ge=0, le=2**31 - 1)


class Claimed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    test_accuracy: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)


class Manifest(BaseModel):
    """``ticket.json``. Unknown keys are rejected so a typo is an error, not a silent
    default. ``recipe`` None means the task's default recipe."""

    model_config = ConfigDict(extra="forbid")

    # Lengths are those of the database columns, so a valid manifest always stores.
    architecture: str = Field(max_length=100)
    task: str = Field(max_length=100)
    init: InitSpec = Field(default_factory=InitSpec)
    recipe: Recipe | None = None
    claimed: Claimed
    method: str = Field(default="imp", max_length=50)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    license: str = Field(default="CC-BY-4.0", max_length=50)
    parent: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12,64}$")] | None = None
    format_version: int = FORMAT_VERSION

    @model_validator(mode="before")
    @classmethod
    def _resolve_named_recipe(cls, data: object) -> object:
        """``"recipe": "lth-lenet"`` names a recipe of ``nirvana.lottery.training.recipes``; it is resolved
        here (epochs for the task's train size), so the stored manifest spells it out."""
        if isinstance(data, dict) and isinstance(data.get("recipe"), str):
            from nirvana.lottery.errors import UnknownTaskError
            from nirvana.lottery.training.recipes import named_recipe

            try:
                task = get_task(str(data.get("task")))
            except UnknownTaskError:
                task = None  # prepare_ticket reports the task; a step recipe still resolves
            data = {**data, "recipe": named_recipe(data["recipe"], task).model_dump()}
        return data

    @model_validator(mode="after")
    def _no_nul_characters(self) -> Manifest:
        # PostgreSQL text and JSONB cannot hold U+0000; refuse it here, not at INSERT.
        for name in ("architecture", "task", "method", "title", "description", "license"):
            if "\x00" in getattr(self, name):
                raise ValueError(f"{name} contains a NUL character")
        return self

    def to_json(self) -> bytes:
        """UTF-8 JSON, ``None`` fields left out, as ``TicketFolder.write`` stores it."""
        return self.model_dump_json(indent=2, exclude_none=True).encode("utf-8") + b"\n"


def parse_manifest(data: bytes) -> Manifest:
    """Parse ``ticket.json`` bytes.

    Raises:
        InvalidClaimError: the claimed accuracy is not a number in [0, 1].
        InvalidManifestError: not UTF-8, not JSON, or any other validation error; the
            detail names the first offending field.
    """
    try:
        raw = json.loads(bytes(data).decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidManifestError("ticket.json is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidManifestError(f"ticket.json is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidManifestError("ticket.json nests too deeply") from None
    if not isinstance(raw, dict):
        raise InvalidManifestError("ticket.json must be a JSON object")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"]) or "(root)"
        detail = f"ticket.json: {loc}: {first['msg']}"
        if tuple(first["loc"][:2]) == ("claimed", "test_accuracy"):
            raise InvalidClaimError(detail) from None
        raise InvalidManifestError(detail) from None


def ticket_id(
    *,
    architecture: str,
    init_scheme: str,
    seed: int | None,
    rewind_step: int,
    init_digest: str,
    mask_digest: str,
) -> str:
    """SHA-256 hex of ``json.dumps(fields, sort_keys=True, separators=(",", ":"))``."""
    fields = {
        "architecture": architecture,
        "init_scheme": init_scheme,
        "seed": seed,
        "rewind_step": rewind_step,
        "init_digest": init_digest,
        "mask_digest": mask_digest,
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def short_id(id_: str) -> str:
    """The 12-character form shown to people."""
    return id_[:12]


def file_metadata(architecture: str) -> dict[str, str]:
    """``__metadata__`` written into Nirvana's safetensors files."""
    return {"format_version": str(FORMAT_VERSION), "architecture": architecture}


class TicketFolder:
    """A ticket on disk: ``ticket.json``, ``mask.safetensors``, ``init.safetensors``."""

    MANIFEST = "ticket.json"
    MASK = "mask.safetensors"
    INIT = "init.safetensors"

    @staticmethod
    def write(
        path: str | Path,
        manifest: Manifest,
        mask: dict[str, torch.Tensor],
        init: dict[str, torch.Tensor] | None = None,
    ) -> Path:
        """Write the folder (created if needed); returns its path."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        meta = file_metadata(manifest.architecture)
        (folder / TicketFolder.MANIFEST).write_bytes(manifest.to_json())
        (folder / TicketFolder.MASK).write_bytes(dump_tensors(mask, meta))
        if init is not None:
            (folder / TicketFolder.INIT).write_bytes(dump_tensors(init, meta))
        return folder

    @staticmethod
    def read(
        path: str | Path,
    ) -> tuple[Manifest, dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
        """``(manifest, mask, init or None)``; raises the format errors of the parsers."""
        folder = Path(path)
        manifest = parse_manifest((folder / TicketFolder.MANIFEST).read_bytes())
        mask = load_tensors((folder / TicketFolder.MASK).read_bytes())
        init_path = folder / TicketFolder.INIT
        init = load_tensors(init_path.read_bytes()) if init_path.is_file() else None
        return manifest, mask, init


@dataclass(frozen=True)
class PreparedTicket:
    """A validated upload, ready to store: everything the database needs."""

    id: str
    manifest: Manifest
    recipe: Recipe
    mask: dict[str, torch.Tensor]
    init: dict[str, torch.Tensor]
    mask_bytes: bytes
    init_bytes: bytes
    mask_digest: str
    init_digest: str
    sparsity: SparsityReport
    info: ArchitectureInfo
    #: The compact forms (``nirvana.lottery.tickets.compact``) and the digest of what
    #: the kept init rebuilds (the init with pruned weights zeroed).
    mask_packed_bytes: bytes
    init_kept_bytes: bytes
    init_kept_digest: str

    @property
    def short_id(self) -> str:
        return short_id(self.id)


def tensor_bounds(info: ArchitectureInfo) -> FileBounds:
    """The most a mask or an init of ``info`` may hold: its whole ``state_dict``. A file
    beyond it is refused before its header is parsed; one within it that names the
    wrong tensors gets ``validate_mask``'s or ``validate_init``'s precise error."""
    return FileBounds.for_tensors([(p.name, p.numel) for p in info.parameters])
def _read_mask(mask_bytes: bytes, info: ArchitectureInfo) -> tuple[dict[str, torch.Tensor], bytes]:
    """The dense mask and the dense file to store, from either wire form."""
    if not is_packed_mask(mask_bytes):
        return load_tensors(mask_bytes, bounds=tensor_bounds(info)), bytes(mask_bytes)
    shapes = {p.name: p.shape for p in info.parameters if p.prunable}
    mask = decode_mask(mask_bytes, expected=shapes)
    return mask, dump_tensors(mask, file_metadata(info.name))


def _read_kept_init(
    manifest: Manifest, info: ArchitectureInfo, init_bytes: bytes, mask: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], bytes]:
    """A kept init as its dense init. With a seed and ``rewind_step == 0`` the pruned
    weights come from the seed (the kept values must equal it), so the id is that of
    the dense upload; otherwise they are zero."""
    init = decode_init(init_bytes, mask)
    validate_init(init, info)
    spec = manifest.init
    if spec.seed is not None and spec.rewind_step == 0:
        expected = generate_init(manifest.architecture, get_task(manifest.task), spec.scheme, spec.seed)
        if tensors_digest(masked_init(expected, mask)) != tensors_digest(init):
            raise InitMismatchError(
                f"the kept init differs from what {spec.scheme} with seed {spec.seed} generates; "
                "drop the seed or upload the matching init"
            )
        init = expected
    return init, dump_tensors(init, file_metadata(manifest.architecture))


def _resolve_init(
    manifest: Manifest, info: ArchitectureInfo, init_bytes: bytes | None, mask: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], bytes]:
    spec = manifest.init
    task = get_task(manifest.task)
    if init_bytes is not None and is_kept_init(init_bytes):
        return _read_kept_init(manifest, info, init_bytes, mask)
    if init_bytes is None:
        if spec.rewind_step > 0:
            raise InitRequiredError(
                f"rewind_step={spec.rewind_step}: upload init.safetensors with the rewound "
                "weights (a seed regenerates only the step-0 init)"
            )
        if spec.seed is None:
            raise InvalidManifestError(
                "ticket.json: init.seed is required when no init.safetensors is uploaded"
            )
        init = generate_init(manifest.architecture, task, spec.scheme, spec.seed)
        return init, dump_tensors(init, file_metadata(manifest.architecture))
    init = load_tensors(init_bytes, bounds=tensor_bounds(info))
    validate_init(init, info)
    if spec.seed is not None and spec.rewind_step == 0:
        expected = generate_init(manifest.architecture, task, spec.scheme, spec.seed)
        for name, t in expected.items():
            got = init[name]
            if got.dtype != t.dtype or not torch.equal(got, t):
                raise InitMismatchError(
                    f"init {name!r} ({got.dtype}) differs from what {spec.scheme} with seed "
                    f"{spec.seed} generates ({t.dtype}); drop the seed or upload the matching init"
                )
    return init, bytes(init_bytes)


def prepare_ticket(
    manifest: Manifest | bytes,
    mask_bytes: bytes,
    init_bytes: bytes | None = None,
    *,
    max_steps: int = 100_000,
    max_examples: int = MAX_EXAMPLES,
) -> PreparedTicket:
    """Validate an upload completely and compute its id; stores nothing.

    Checks, in order: manifest, task, architecture on the task, init scheme, recipe
    (``check_compute``), the mask file (dense, its header bounded by the architecture
    before it is parsed; or packed, decoded against the architecture's shapes) and
    mask, then the init: uploaded dense or kept (validated;
    must equal the seed's regeneration when a seed is given and ``rewind_step == 0``)
    or generated from the seed.

    Raises:
        LotteryError subclasses: ``InvalidManifestError``/``InvalidClaimError``,
        ``UnknownTaskError``, ``UnknownArchitectureError``, ``UnknownInitSchemeError``,
        ``InvalidRecipeError``, ``InvalidSafetensorsError``, ``InvalidMaskError``,
        ``InvalidInitError``, ``InitRequiredError``, ``InitMismatchError``.
    """
    if not isinstance(manifest, Manifest):
        manifest = parse_manifest(manifest)
    task = get_task(manifest.task)
    info = describe(manifest.architecture, task.input_shape, task.num_classes)
    check_scheme(manifest.init.scheme)
    recipe = manifest.recipe or task.default_recipe
    check_compute(recipe, max_steps=max_steps, max_examples=max_examples)
    mask, stored_mask = _read_mask(mask_bytes, info)
    validate_mask(mask, info)
    init, stored_init = _resolve_init(manifest, info, init_bytes, mask)
    mask_digest, init_digest = tensors_digest(mask), tensors_digest(init)
    id_ = ticket_id(
        architecture=manifest.architecture,
        init_scheme=manifest.init.scheme,
        seed=manifest.init.seed,
        rewind_step=manifest.init.rewind_step,
        init_digest=init_digest,
        mask_digest=mask_digest,
    )
    return PreparedTicket(
        id=id_,
        manifest=manifest,
        recipe=recipe,
        mask=mask,
        init=init,
        mask_bytes=stored_mask,
        init_bytes=stored_init,
        mask_digest=mask_digest,
        init_digest=init_digest,
        sparsity=sparsity_report(mask, info),
        info=info,
        mask_packed_bytes=encode_mask(mask, file_metadata(manifest.architecture)),
        init_kept_bytes=encode_init(init, mask, file_metadata(manifest.architecture)),
        init_kept_digest=tensors_digest(masked_init(init, mask)),
    )
