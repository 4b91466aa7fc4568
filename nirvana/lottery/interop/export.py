"""Exported models: a folder with ``model.safetensors`` and a ``config.json`` the core
builds again (``load_exported``), optionally ``model.onnx``.

Two kinds. ``masked``: the ticket's architecture with pruned weights zero (``config``:
``{"format": "nirvana-masked", "architecture", "input_shape", "num_classes"}``).
``compact``: the smaller dense network of ``nirvana.lottery.models.compact`` (its
config, plus ``mask.safetensors`` marking the zeros still inside the kept units, for
whoever trains it further). Both compute the masked ticket's function.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from nirvana.lottery.models.architectures import build_model
from nirvana.lottery.models.compact import CONFIG_FORMAT, CompactModel, build_compact
from nirvana.lottery.tickets.compact import masked_init
from nirvana.lottery.tickets.files import dump_tensors, load_tensors

MASKED_FORMAT = "nirvana-masked"
MODEL, CONFIG, MASK, ONNX = "model.safetensors", "config.json", "mask.safetensors", "model.onnx"


def save_masked(out: Path, architecture: str, input_shape: tuple[int, ...], num_classes: int,
                init: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor]) -> nn.Module:
    """Write the masked model into ``out``; returns it (eval mode)."""
    config = {"format": MASKED_FORMAT, "architecture": architecture, "input_shape": list(input_shape), "num_classes": num_classes}
    state = masked_init(init, mask)
    _write(out, config, state)
    return load_exported(out)


def save_compact(out: Path, model: CompactModel) -> nn.Module:
    """Write a compact model into ``out``; returns it (eval mode)."""
    _write(out, model.config, model.state)
    (out / MASK).write_bytes(dump_tensors(model.mask))
    return load_exported(out)


def _write(out: Path, config: Mapping[str, object], state: Mapping[str, torch.Tensor]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL).write_bytes(dump_tensors(state))
    (out / CONFIG).write_text(json.dumps(config, indent=2) + "\n")


def load_exported(folder: Path) -> nn.Module:
    """The model an export folder holds, weights loaded, in eval mode."""
    config = json.loads((folder / CONFIG).read_text())
    if config.get("format") == CONFIG_FORMAT:
        model: nn.Module = build_compact(config)
    else:
        model = build_model(config["architecture"], tuple(config["input_shape"]), int(config["num_classes"]))
    model.load_state_dict(load_tensors((folder / MODEL).read_bytes()), strict=True)
    return model.eval()


def save_onnx(out: Path, model: nn.Module, input_shape: tuple[int, ...]) -> Path:
    """``model.onnx`` of ``model`` (input ``x``, batch dimension dynamic, output
    ``logits``). Needs the ``onnx`` package (``pip install 'nirvana[onnx]'``)."""
    import importlib.util

    if importlib.util.find_spec("onnx") is None:  # torch's exporter needs it; say so before it does
        raise RuntimeError("ONNX export needs the onnx package: pip install 'nirvana[onnx]'") from None
    path = out / ONNX
    example = torch.zeros((1, *input_shape))
    with warnings.catch_warnings():
        # the TorchScript exporter: the torch.export one needs onnxscript, and these
        # networks have no control flow for it to gain anything on.
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (example,), str(path), dynamo=False, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    return path
