"""Compact models: a masked LeNet or Conv-2/4/6 with its dead units removed, as a
smaller dense network that computes the same function.

A hidden unit (a conv channel) whose surviving outgoing weights all lead nowhere can
be removed with its incoming weights and bias: nothing depends on it, so this is exact
for inference *and for training* (those weights get zero gradient). An input feature
(an input channel, a flattened conv feature) that no surviving weight reads is dropped
by an index. That is ``for_training=True``.

For inference (``for_training=False``) a unit with no surviving *inputs* goes too: it
outputs the constant ``relu(bias)``; when that is zero it contributes nothing, and when
the next layer is linear the constant is folded into that layer's bias. (A constant
map into a padded 3x3 conv is not constant at the borders, so such a conv channel with
a nonzero bias stays.) Training the folded model is not the masked model's training,
which is why ``nirvana train`` compacts with ``for_training=True``.

The result is a ``CompactNet`` built from a JSON ``config`` (``build_compact``); its
``state_dict`` keeps the original names (``fc1.weight``), with smaller shapes, and its
``mask`` marks the weights still pruned inside the surviving units (zeros on export).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nirvana.lottery.errors import LotteryError
from nirvana.lottery.models.architectures import LeNet, build_model
from nirvana.lottery.models.conv import ConvNet

CONFIG_FORMAT = "nirvana-compact"


class CompactUnsupportedError(LotteryError):
    """The architecture has no compact form (only the LeNet and Conv-2/4/6 chains do)."""

    code = "compact_unsupported"


class CompactNet(nn.Module):
    """Convs (3x3, padding 1, ReLU, 2x2 max-pool where ``pool``), then ReLU linears.

    ``input_index`` picks flat input features (no convs) or input channels; ``flatten_index``
    picks the flattened conv features that ``fc1`` reads. With ``inputs_selected`` the
    net takes what ``select_inputs`` returns (the pick made once, e.g. on a whole
    training set) instead of picking from every batch.
    """

    input_index: torch.Tensor
    flatten_index: torch.Tensor

    def __init__(self, config: Mapping[str, Any], *, inputs_selected: bool = False) -> None:
        super().__init__()
        self.config = dict(config)
        self.register_buffer("input_index", torch.tensor(config["input_index"], dtype=torch.long), persistent=False)
        self.register_buffer("flatten_index", torch.tensor(config.get("flatten_index") or [], dtype=torch.long), persistent=False)
        self.pools = list(config.get("pool", []))
        # An index that keeps every feature in order is skipped: a gather costs time.
        full_inputs = config["input_shape"][0] if self.pools else math.prod(config["input_shape"])
        self.picks_inputs = not inputs_selected and config["input_index"] != list(range(full_inputs))
        c = len(config["input_index"])
        for i, out in enumerate(config.get("convs", [])):
            setattr(self, f"conv{i + 1}", nn.Conv2d(c, out, kernel_size=3, padding=1))
            c = out
        flat = c * int(config.get("flatten_positions", 0))
        self.picks_flat = bool(self.pools) and config["flatten_index"] != list(range(flat))
        sizes = [len(config["flatten_index"]) if self.pools else c, *config["linears"]]
        for i in range(len(sizes) - 1):
            setattr(self, f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))
        self.fc_depth = len(sizes) - 1

    def select_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The inputs the first layer reads: ``x``'s picked channels (convs) or flat
        features (no convs); ``x`` batched in the full input shape."""
        if self.pools:
            return x.index_select(1, self.input_index)
        return x.flatten(1).index_select(1, self.input_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pools:
            x = self.select_inputs(x) if self.picks_inputs else x
            for i, pool in enumerate(self.pools):
                x = F.relu(getattr(self, f"conv{i + 1}")(x))
                if pool:
                    x = F.max_pool2d(x, kernel_size=2, stride=2)
            x = x.flatten(1)
            x = x.index_select(1, self.flatten_index) if self.picks_flat else x
        else:
            x = self.select_inputs(x) if self.picks_inputs else x.flatten(1)
        for i in range(1, self.fc_depth):
            x = F.relu(getattr(self, f"fc{i}")(x))
        out: torch.Tensor = getattr(self, f"fc{self.fc_depth}")(x)
        return out


def build_compact(config: Mapping[str, Any], *, inputs_selected: bool = False) -> CompactNet:
    """The module a compact ``config`` describes (weights uninitialised: load them)."""
    if config.get("format") != CONFIG_FORMAT:
        raise CompactUnsupportedError(f"not a compact model config (format {config.get('format')!r})")
    return CompactNet(config, inputs_selected=inputs_selected)


@dataclass(frozen=True)
class CompactModel:
    """A compact model: its ``config`` (JSON-able), weights, and remaining mask."""

    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    mask: dict[str, torch.Tensor]

    def module(self, *, inputs_selected: bool = False) -> CompactNet:
        """The model with these weights; ``inputs_selected``: see ``CompactNet``."""
        model = build_compact(self.config, inputs_selected=inputs_selected)
        model.load_state_dict(self.state, strict=True)
        return model

    @property
    def parameters(self) -> int:
        return sum(t.numel() for t in self.state.values())

    def shape(self) -> dict[str, list[int]]:
        """Parameter name -> shape of the compact model."""
        return {name: list(t.shape) for name, t in self.state.items()}

    def config_json(self) -> str:
        return json.dumps(self.config, indent=2) + "\n"


@dataclass
class _Layer:
    name: str
    conv: bool
    pool: bool
    weight: torch.Tensor  # masked (pruned positions zero), original shape
    bias: torch.Tensor
    mask: torch.Tensor


def _layers(model: nn.Module, state: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor]) -> list[_Layer]:
    if isinstance(model, LeNet):
        names = [(f"fc{i + 1}", False, False) for i in range(model.depth)]
    elif isinstance(model, ConvNet):
        names = [(f"conv{i + 1}", True, i % 2 == 1) for i in range(2 * model.pairs)]
        names += [(f"fc{i + 1}", False, False) for i in range(model.fc_depth)]
    else:
        raise CompactUnsupportedError(f"{type(model).__name__} has no compact form; only LeNet and Conv-2/4/6 do")
    out = []
    for name, conv, pool in names:
        w = state[f"{name}.weight"]
        m = mask.get(f"{name}.weight", torch.ones_like(w, dtype=torch.bool)).to(torch.bool)
        out.append(_Layer(name, conv, pool, torch.where(m, w, torch.zeros((), dtype=w.dtype)), state[f"{name}.bias"].clone(), m))
    return out


def _used_inputs(layer: _Layer, rows: torch.Tensor) -> torch.Tensor:
    """Per input feature (channel), whether a surviving weight of a kept row reads it."""
    m = layer.mask[rows]
    return m.flatten(2).any(2).any(0) if layer.conv else m.any(0)


def compact(architecture: str, input_shape: tuple[int, ...], num_classes: int, state: Mapping[str, torch.Tensor],
            mask: Mapping[str, torch.Tensor], *, for_training: bool = False) -> CompactModel:
    """The compact form of the masked model (see the module docstring).

    Raises ``CompactUnsupportedError`` for architectures other than LeNet and Conv-k."""
    with torch.device("meta"):
        skeleton = build_model(architecture, input_shape, num_classes)
    layers = _layers(skeleton, state, mask)
    n_conv = sum(layer.conv for layer in layers)
    spatial = _flatten_spatial(layers, n_conv, input_shape)
    keep = [torch.ones(layer.weight.shape[0], dtype=torch.bool) for layer in layers]
    changed = True
    while changed:
        changed = _drop_output_dead(layers, keep, n_conv, spatial)
        if not for_training:
            changed = _drop_input_dead(layers, keep, n_conv, spatial) or changed
    return _assemble(architecture, input_shape, layers, keep, n_conv, spatial)


def _flatten_spatial(layers: list[_Layer], n_conv: int, input_shape: tuple[int, ...]) -> int:
    """Positions per channel where the convs are flattened into ``fc1`` (1 without convs)."""
    if not n_conv:
        return 1
    return layers[n_conv].weight.shape[1] // layers[n_conv - 1].weight.shape[0]


def _inputs_of(layers: list[_Layer], keep: list[torch.Tensor], i: int, n_conv: int, spatial: int) -> torch.Tensor:
    """Which units of layer ``i - 1`` layer ``i`` reads through a surviving weight."""
    used = _used_inputs(layers[i], keep[i].nonzero().flatten())
    if n_conv and i == n_conv:  # fc1 reads channel c through features c*S .. c*S+S-1
        used = used.reshape(-1, spatial).any(1)
    return used


def _drop_output_dead(layers: list[_Layer], keep: list[torch.Tensor], n_conv: int, spatial: int) -> bool:
    changed = False
    for i in range(len(layers) - 1, 0, -1):
        alive = keep[i - 1] & _inputs_of(layers, keep, i, n_conv, spatial)
        changed |= not torch.equal(alive, keep[i - 1])
        keep[i - 1] = alive
    return changed


def _drop_input_dead(layers: list[_Layer], keep: list[torch.Tensor], n_conv: int, spatial: int) -> bool:
    changed = False
    for i in range(len(layers) - 1):
        layer, nxt = layers[i], layers[i + 1]
        inputs = keep[i - 1] if i > 0 else None
        if inputs is not None and i == n_conv:
            inputs = inputs.repeat_interleave(spatial)  # fc1's columns are conv features
        m = layer.mask if inputs is None else layer.mask[:, inputs]
        has_in = m.flatten(1).any(1)
        for j in (keep[i] & ~has_in).nonzero().flatten().tolist():
            const = float(torch.relu(layer.bias[j]))
            if const != 0.0 and nxt.conv:
                continue  # a constant map into a padded conv is not constant at the borders
            if const != 0.0:
                cols = slice(j * spatial, (j + 1) * spatial) if i == n_conv - 1 else slice(j, j + 1)
                nxt.bias += const * nxt.weight[:, cols].sum(1)
            keep[i][j] = False
            changed = True
    return changed


def _assemble(architecture: str, input_shape: tuple[int, ...], layers: list[_Layer], keep: list[torch.Tensor],
              n_conv: int, spatial: int) -> CompactModel:
    state: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    rows_prev = _used_inputs(layers[0], keep[0].nonzero().flatten()).nonzero().flatten()
    input_index = rows_prev
    flatten_index: list[int] = []
    for i, layer in enumerate(layers):
        rows = keep[i].nonzero().flatten()
        if n_conv and i == n_conv:
            channels = rows_prev
            features = (channels[:, None] * spatial + torch.arange(spatial)).flatten()
            used = _used_inputs(layer, rows)[features].nonzero().flatten()
            flatten_index, cols = used.tolist(), features[used]
        else:
            cols = rows_prev
        state[f"{layer.name}.weight"] = layer.weight[rows][:, cols].contiguous()
        state[f"{layer.name}.bias"] = layer.bias[rows].contiguous()
        masks[f"{layer.name}.weight"] = layer.mask[rows][:, cols].contiguous()
        rows_prev = rows
    config = {
        "format": CONFIG_FORMAT,
        "version": 1,
        "architecture": architecture,
        "input_shape": list(input_shape),
        "input_index": input_index.tolist(),
        "convs": [int(keep[i].sum()) for i in range(n_conv)],
        "pool": [layers[i].pool for i in range(n_conv)],
        "flatten_index": flatten_index,
        "flatten_positions": spatial,  # per channel, where fc1 reads the convs
        "linears": [int(keep[i].sum()) for i in range(n_conv, len(layers))],
    }
    return CompactModel(config, state, masks)
