"""Tickets in other people's code: plain ``torch.nn.Module`` pruning and foreign
``state_dict`` names.

- ``apply_prune_masks(model, mask)`` prunes a plain module with
  ``torch.nn.utils.prune.custom_from_mask``, so a ticket trains under anyone's loop:
  ``module.weight`` becomes ``weight_orig * weight_mask`` on every forward pass, hence
  pruned entries stay zero whatever the optimizer does to ``weight_orig``.
  ``torch.nn.utils.prune.remove`` (or ``remove_prune_masks``) bakes it in.
- ``pruned_model(architecture, task, mask, init)`` validates a ticket's tensors, builds
  the architecture, loads the init and applies the mask: what ``load_ticket(folder)``
  and the client's ``Client.load`` both do.
- ``pair_state_dict(theirs, info)`` maps another codebase's parameter names onto ours
  by module order, checking every shape, instead of guessing from the names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from nirvana.lottery.models.architectures import ArchitectureInfo, build_model, describe
from nirvana.lottery.errors import LotteryError
from nirvana.lottery.pruning.masks import mask_pairs, validate_init, validate_mask

__all__ = [
    "StateDictMismatchError",
    "apply_prune_masks",
    "load_ticket",
    "pair_state_dict",
    "pruned_model",
    "remove_prune_masks",
]


class StateDictMismatchError(LotteryError):
    """A foreign ``state_dict`` that does not line up with our architecture."""

    code = "state_dict_mismatch"


def apply_prune_masks(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> nn.Module:
    """Prune ``model`` in place with ``prune.custom_from_mask``, one entry per mask name.

    Each ``mask[name]`` (bool or 0/1, any device) must name a parameter of ``model`` with
    the same shape; it is moved to that parameter's device. Afterwards the module holds
    ``<param>_orig`` (the learnable tensor) and the buffer ``<param>_mask``, and
    ``<param>`` is recomputed as their product before every forward pass. Returns
    ``model``.

    Raises:
        InvalidMaskError: a name that is not a parameter of ``model``, or a wrong shape.
    """
    for name, _, keep in mask_pairs(model, mask):  # all checked before any is pruned
        module_name, _, param = name.rpartition(".")
        module = model.get_submodule(module_name) if module_name else model
        prune.custom_from_mask(module, name=param, mask=keep)  # type: ignore[no-untyped-call]
    return model


def remove_prune_masks(model: nn.Module) -> nn.Module:
    """Make every pruning of ``model`` permanent (``prune.remove``): the parameter is
    the masked tensor again and the hooks, ``_orig`` and ``_mask`` are gone."""
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)  # type: ignore[no-untyped-call]
    return model


def load_ticket(folder: str | Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A ticket folder (``ticket.json``, ``mask.safetensors``, ``init.safetensors``)
    as a pruned ``nn.Module`` on ``device`` and its bool mask.

    The init must be in the folder (``TicketFolder.write`` puts it there; a seed-only
    ticket can be completed with ``prepare_ticket``). Raises the format errors of
    ``TicketFolder.read``, ``InvalidMaskError``/``InvalidInitError`` for tensors that do
    not fit the architecture.
    """
    from nirvana.lottery.tickets.manifest import TicketFolder

    manifest, mask, init = TicketFolder.read(folder)
    if init is None:
        raise LotteryError(f"{folder}: no init.safetensors; download the full ticket first")
    return pruned_model(manifest.architecture, manifest.task, mask, init, device=device), mask


def pruned_model(
    architecture: str, task: str, mask: Mapping[str, torch.Tensor], init: Mapping[str, torch.Tensor],
    *, device: str | torch.device = "cpu",
) -> nn.Module:
    """``architecture`` for ``task`` on ``device``, holding ``init`` and pruned by
    ``mask`` (``apply_prune_masks``). Both are validated against the architecture first.

    Raises:
        UnknownTaskError, UnknownArchitectureError, InvalidMaskError, InvalidInitError.
    """
    from nirvana.lottery.data.tasks import get_task

    spec = get_task(task)
    info = describe(architecture, spec.input_shape, spec.num_classes)
    validate_mask(mask, info)
    validate_init(init, info)
    model = build_model(architecture, spec.input_shape, spec.num_classes)
    model.load_state_dict(dict(init), strict=True)
    model.to(device)
    return apply_prune_masks(model, mask)


def _kind(name: str) -> str:
    return name.rpartition(".")[2]


def pair_state_dict(theirs: Mapping[str, torch.Tensor], info: ArchitectureInfo, *, source: str = "checkpoint") -> dict[str, str]:
    """``{their name: our name}``, pairing entries in order.

    Both sides list tensors in module-definition order (``state_dict`` order), so the
    i-th entry of ``theirs`` must be the i-th of ``info``: same shape and same last name
    component (``weight``, ``bias``, ``running_mean`` ...). Names are never guessed, so
    a reordered or different architecture fails loudly instead of loading silently
    into the wrong layers.

    Raises:
        StateDictMismatchError: different counts, or the first pair that disagrees.
    """
    ours = info.parameters
    names = list(theirs)
    for i, (their_name, p) in enumerate(zip(names, ours, strict=False)):
        shape = tuple(theirs[their_name].shape)
        if shape != p.shape or _kind(their_name) != _kind(p.name):
            raise StateDictMismatchError(
                f"{source} entry #{i} {their_name!r} {list(shape)} does not match {info.name}'s "
                f"{p.name!r} {list(p.shape)}: not the same architecture (or not in module order)"
            )
    if len(names) != len(ours):
        extra = names[len(ours)] if len(names) > len(ours) else ours[len(names)].name
        raise StateDictMismatchError(
            f"{source} has {len(names)} tensors, {info.name} has {len(ours)} "
            f"(first unpaired: {extra!r})"
        )
    return {their_name: p.name for their_name, p in zip(names, ours, strict=True)}
