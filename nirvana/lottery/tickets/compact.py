"""Compact ticket files: a mask entropy-coded near ``n * H(p)`` bits per layer, and an
init as its kept values only. Both are safetensors (one ``uint8`` tensor, or the kept
values, plus string metadata) and both decode to the dense tensors exactly, so the
digests and ids, always over the dense tensors, never depend on the form.

**Packed mask** (``format=nirvana-mask-packed``): one 1-D ``uint8`` tensor ``packed``;
``__metadata__["layers"]`` is a JSON list, one entry per masked parameter::

    {"name": "fc1.weight", "shape": [300, 784], "codec": "rice", "invert": false,
     "k": 5, "count": 4704, "unary": 612, "bytes": [0, 3558]}

``codec`` is ``"bits"`` (``numpy.packbits`` of the flat mask, big-endian bit order)
or ``"rice"``: the flat positions of the minority symbol (``True``, or ``False`` when
``invert``) as gaps (zeros skipped before each), each gap Golomb-Rice coded with
parameter ``k`` in two streams: the quotients ``gap >> k`` in unary (``q`` ones then a
zero; ``unary`` bytes) followed by the remainders, ``k`` bits each (big-endian).
Splitting the streams makes both directions vectorised numpy. The encoder picks, per
layer, the cheaper of bits and the best ``k``. For any mask the Rice cost is about
``n / 2**k + count * (1 + k)`` bits whatever the gaps' distribution, which is within a
few per cent of ``n * H(p)`` for the densities tickets have.

**Kept init** (``format=nirvana-init-kept``): every masked parameter as a 1-D tensor of
its kept values in flat (C) order, every other ``state_dict`` entry as it is;
``__metadata__["kept"]`` maps the masked names to their dense shapes. Decoding needs
the mask and fills pruned positions with zeros: that is the dense init exactly when the
pruned weights were zero, else the *masked* init (what a pruned network computes with).

Decoders validate everything before allocating: metadata sizes are bounded
(``MAX_ELEMENTS``), byte ranges must lie in the buffer, every stream must decode to in-
range positions; anything else is an ``InvalidSafetensorsError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from nirvana.lottery.errors import InvalidSafetensorsError
from nirvana.lottery.tickets.files import dump_tensors, load_tensors, read_metadata

MASK_FORMAT = "nirvana-mask-packed"
INIT_FORMAT = "nirvana-init-kept"
#: No zoo parameter comes near this; it bounds what a hostile header can make us allocate.
MAX_ELEMENTS = 1 << 28
MAX_LAYERS = 4096
_MAX_K = 40


def entropy_bits(mask: Mapping[str, torch.Tensor]) -> float:
    """The per-layer entropy bound ``sum over layers of n * H(p)`` in bits, ``p`` the
    layer's density: what an ideal coder of independent per-layer bits needs."""
    total = 0.0
    for m in mask.values():
        n = m.numel()
        p = float(m.sum()) / n if n else 0.0
        if 0.0 < p < 1.0:
            total += n * -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    return total


# --- masks ----------------------------------------------------------------------------


def _rice_cost(gaps: np.ndarray, k: int) -> int:
    return int((gaps >> k).sum()) + len(gaps) * (1 + k)


def _encode_layer(flat: np.ndarray) -> tuple[dict[str, Any], bytes]:
    n = flat.size
    ones = int(flat.sum())
    invert = ones > n - ones
    positions = np.flatnonzero(~flat if invert else flat).astype(np.int64)
    gaps = np.diff(positions, prepend=-1) - 1
    top = int(gaps.max()).bit_length() if gaps.size else 0
    k = min(range(min(top, _MAX_K) + 1), key=lambda k: _rice_cost(gaps, k))
    if n <= _rice_cost(gaps, k):
        return {"codec": "bits", "invert": False, "k": 0, "count": ones, "unary": 0}, np.packbits(flat).tobytes()
    q, r = gaps >> k, gaps & ((1 << k) - 1)
    unary = np.ones(int(q.sum()) + len(q), dtype=np.uint8)
    unary[np.cumsum(q + 1) - 1] = 0
    unary_bytes = np.packbits(unary).tobytes()
    shifts = np.arange(k - 1, -1, -1, dtype=np.int64)
    rem = ((r[:, None] >> shifts) & 1).astype(np.uint8).reshape(-1)
    entry = {"codec": "rice", "invert": bool(invert), "k": k, "count": len(q), "unary": len(unary_bytes)}
    return entry, unary_bytes + np.packbits(rem).tobytes()


def encode_mask(mask: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """The packed form of a bool ``mask`` (see the module docstring), with
    ``metadata`` merged into its ``__metadata__``."""
    layers, chunks, offset = [], [], 0
    for name in sorted(mask):
        m = mask[name]
        if m.dtype != torch.bool:
            raise InvalidSafetensorsError(f"mask {name!r} has dtype {m.dtype}, not bool")
        entry, data = _encode_layer(m.detach().cpu().reshape(-1).numpy())
        layers.append({"name": name, "shape": list(m.shape), **entry, "bytes": [offset, offset + len(data)]})
        chunks.append(data)
        offset += len(data)
    packed = torch.frombuffer(bytearray(b"".join(chunks)), dtype=torch.uint8) if offset else torch.zeros(0, dtype=torch.uint8)
    meta = {**(metadata or {}), "format": MASK_FORMAT, "layers": json.dumps(layers, separators=(",", ":"))}
    return dump_tensors({"packed": packed}, meta)


def _int(entry: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidSafetensorsError(f"packed mask: layer {entry.get('name')!r} has {key}={value!r}, not in [{low}, {high}]")
    return value


def _check_layer(entry: Any, size: int) -> tuple[str, tuple[int, ...], int]:
    """(name, shape, numel) of one metadata entry, every field checked against bounds."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise InvalidSafetensorsError("packed mask: a layer entry lacks its name")
    name, shape = entry["name"], entry.get("shape")
    if not isinstance(shape, list) or len(shape) > 8 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InvalidSafetensorsError(f"packed mask: layer {name!r} has a malformed shape {shape!r}")
    numel = math.prod(shape)
    if numel > MAX_ELEMENTS:
        raise InvalidSafetensorsError(f"packed mask: layer {name!r} has {numel} elements, more than {MAX_ELEMENTS}")
    span = entry.get("bytes")
    if not (isinstance(span, list) and len(span) == 2 and all(isinstance(b, int) and not isinstance(b, bool) for b in span)
            and 0 <= span[0] <= span[1] <= size):  # fmt: skip
        raise InvalidSafetensorsError(f"packed mask: layer {name!r} has bytes {span!r} outside the data")
    if entry.get("codec") not in ("bits", "rice") or not isinstance(entry.get("invert"), bool):
        raise InvalidSafetensorsError(f"packed mask: layer {name!r} has an unknown codec")
    _int(entry, "k", 0, _MAX_K)
    _int(entry, "count", 0, numel)
    _int(entry, "unary", 0, span[1] - span[0])
    return name, tuple(shape), numel


def _decode_rice(data: np.ndarray, entry: Mapping[str, Any], numel: int) -> np.ndarray:
    k, count, unary_len = entry["k"], entry["count"], entry["unary"]
    if len(data) - unary_len != (count * k + 7) // 8:
        raise InvalidSafetensorsError(f"packed mask: layer {entry['name']!r} has remainders of the wrong length")
    zeros = np.flatnonzero(np.unpackbits(data[:unary_len]) == 0)[:count]
    if len(zeros) != count:
        raise InvalidSafetensorsError(f"packed mask: layer {entry['name']!r} has fewer codes than its count")
    q = np.diff(zeros.astype(np.int64), prepend=-1) - 1
    r = np.zeros(count, dtype=np.int64)
    if k:
        bits = np.unpackbits(data[unary_len:])[: count * k].reshape(count, k).astype(np.int64)
        r = bits @ (np.int64(1) << np.arange(k - 1, -1, -1, dtype=np.int64))
    positions = np.cumsum((q << k) + r + 1) - 1
    if count and positions[-1] >= numel:
        raise InvalidSafetensorsError(f"packed mask: layer {entry['name']!r} codes a position outside its shape")
    flat = np.zeros(numel, dtype=bool)
    flat[positions] = True
    return ~flat if entry["invert"] else flat


def decode_mask(data: bytes, expected: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, torch.Tensor]:
    """The dense bool mask of a packed file; when ``expected`` (name -> shape) is given
    the layers must be exactly those, checked before anything is decoded.

    Raises:
        InvalidSafetensorsError: not a packed mask, or any bound or stream check fails.
    """
    meta = read_metadata(data)
    if meta.get("format") != MASK_FORMAT:
        raise InvalidSafetensorsError(f"not a packed mask: __metadata__ format is {meta.get('format')!r}, not {MASK_FORMAT!r}")
    tensors = load_tensors(data)
    packed = tensors.get("packed")
    if set(tensors) != {"packed"} or packed is None or packed.dtype != torch.uint8 or packed.dim() != 1:
        raise InvalidSafetensorsError("packed mask: the file must hold exactly one 1-D uint8 tensor 'packed'")
    try:
        layers = json.loads(meta.get("layers", ""))
    except json.JSONDecodeError:
        raise InvalidSafetensorsError("packed mask: __metadata__ layers is not JSON") from None
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        raise InvalidSafetensorsError(f"packed mask: layers must be a list of at most {MAX_LAYERS} entries")
    raw = packed.numpy()
    checked = [(_check_layer(entry, len(raw)), entry) for entry in layers]
    names = [name for (name, _, _), _ in checked]
    if len(set(names)) != len(names):
        raise InvalidSafetensorsError("packed mask: a layer is named twice")
    if expected is not None and {n: s for (n, s, _), _ in checked} != {n: tuple(s) for n, s in expected.items()}:
        raise InvalidSafetensorsError("packed mask: its layers and shapes are not those of the architecture")
    out: dict[str, torch.Tensor] = {}
    for (name, shape, numel), entry in checked:
        chunk = raw[entry["bytes"][0] : entry["bytes"][1]]
        if entry["codec"] == "bits":
            if len(chunk) != (numel + 7) // 8:
                raise InvalidSafetensorsError(f"packed mask: layer {name!r} has {len(chunk)} bytes for {numel} bits")
            flat = np.unpackbits(chunk)[:numel].astype(bool)
        else:
            flat = _decode_rice(chunk, entry, numel)
        out[name] = torch.from_numpy(flat.copy()).reshape(shape)
    return out


# --- inits ----------------------------------------------------------------------------


def encode_init(init: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """The kept form of ``init`` under ``mask``: masked entries as their kept values."""
    tensors: dict[str, torch.Tensor] = {}
    for name, t in init.items():
        m = mask.get(name)
        tensors[name] = t.detach().cpu().reshape(-1)[m.reshape(-1)] if m is not None else t
    kept = {name: list(init[name].shape) for name in sorted(mask) if name in init}
    meta = {**(metadata or {}), "format": INIT_FORMAT, "kept": json.dumps(kept, separators=(",", ":"))}
    return dump_tensors(tensors, meta)


def decode_init(data: bytes, mask: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The dense init of a kept file, pruned positions zero; ``mask`` is the ticket's
    dense mask (decode the packed one first).

    Raises:
        InvalidSafetensorsError: not a kept init, or it does not fit ``mask``.
    """
    meta = read_metadata(data)
    if meta.get("format") != INIT_FORMAT:
        raise InvalidSafetensorsError(f"not a kept init: __metadata__ format is {meta.get('format')!r}, not {INIT_FORMAT!r}")
    try:
        kept = json.loads(meta.get("kept", ""))
    except json.JSONDecodeError:
        raise InvalidSafetensorsError("kept init: __metadata__ kept is not JSON") from None
    if not isinstance(kept, dict) or set(kept) != set(mask):
        raise InvalidSafetensorsError("kept init: its kept entries are not the mask's parameters")
    tensors = load_tensors(data)
    out: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        m = mask.get(name)
        if m is None:
            out[name] = t
            continue
        if kept[name] != list(m.shape) or t.dim() != 1 or t.numel() != int(m.sum()):
            raise InvalidSafetensorsError(f"kept init: {name!r} does not fit its mask ({t.numel()} values, shape {kept[name]!r})")
        dense = torch.zeros(m.numel(), dtype=t.dtype)
        dense[m.reshape(-1)] = t
        out[name] = dense.reshape(m.shape)
    if not set(mask) <= set(out):
        raise InvalidSafetensorsError("kept init: a masked parameter has no values")
    return out


def masked_init(init: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``init`` with pruned positions set to zero: what ``decode_init`` rebuilds."""
    # where(), not t * mask: a negative weight times zero is -0.0, whose bytes differ.
    return {name: torch.where(mask[name], t, torch.zeros((), dtype=t.dtype)) if name in mask else t for name, t in init.items()}


def is_packed_mask(data: bytes) -> bool:
    """Whether ``data`` says it is a packed mask (its header is still validated)."""
    return read_metadata(data).get("format") == MASK_FORMAT


def is_kept_init(data: bytes) -> bool:
    """Whether ``data`` says it is a kept init."""
    return read_metadata(data).get("format") == INIT_FORMAT
