"""Safetensors bytes in and out, checked before ``safetensors`` ever sees them.

Uploads are untrusted: the header is validated by hand (length, JSON, offsets) so a
truncated file, a pickle or random bytes give ``InvalidSafetensorsError`` with a
useful detail instead of a crash or a giant allocation. Nothing here unpickles.
``nirvana.lottery.tickets.manifest`` re-exports these functions; import them from there.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from nirvana.lottery.errors import InvalidSafetensorsError

#: A header larger than this is not a mask or an init of any network we serve.
MAX_HEADER_BYTES = 100 * 1024 * 1024
#: Header bytes granted to ``__metadata__`` and to each tensor entry beyond its name
#: (an entry such as ``"dtype":"F32","shape":[300,784],"data_offsets":[0,940800]``
#: takes under 100).
METADATA_ALLOWANCE = 64 * 1024
ENTRY_ALLOWANCE = 256
#: Bytes per element of the widest dtype a mask or init may use (F64, I64).
MAX_ITEMSIZE = 8


@dataclass(frozen=True)
class FileBounds:
    """The most a safetensors file may hold: tensor entries, header bytes, file bytes.

    Checked from the 8-byte length prefix before the header is parsed, and the entry
    count before any tensor is built, so a hostile file costs no more than a
    legitimate one of the same architecture."""

    entries: int
    header_bytes: int
    file_bytes: int

    @classmethod
    def for_tensors(cls, tensors: Sequence[tuple[str, int]]) -> FileBounds:
        """The bounds of a file holding ``tensors`` (name, element count) and no more."""
        header = METADATA_ALLOWANCE + sum(len(name.encode()) + ENTRY_ALLOWANCE for name, _ in tensors)
        body = MAX_ITEMSIZE * sum(numel for _, numel in tensors)
        return cls(entries=len(tensors), header_bytes=header, file_bytes=8 + header + body)

_PICKLE_HINT = (
    "this looks like a pickle/torch.save file; Nirvana only accepts safetensors — "
    "convert with safetensors.torch.save_file(state_dict, 'mask.safetensors')"
)


def _looks_like_pickle(data: bytes) -> bool:
    # torch.save writes a zip archive (PK\x03\x04); the legacy format and plain pickle
    # start with the PROTO opcode \x80 followed by a protocol number 2..5.
    return data[:4] == b"PK\x03\x04" or (len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5)


def _fail(data: bytes, detail: str) -> InvalidSafetensorsError:
    if _looks_like_pickle(data):
        return InvalidSafetensorsError(_PICKLE_HINT)
    return InvalidSafetensorsError(f"not a valid safetensors file: {detail}")


def parse_header(data: bytes, bounds: FileBounds | None = None) -> dict[str, Any]:
    """The JSON header of a safetensors file, validated against the buffer.

    Checks: 8-byte little-endian length N with N <= len(data) - 8 and N <= 100 MB; the
    header is a UTF-8 JSON object; ``__metadata__`` maps strings to strings; every tensor
    entry has a string dtype, a list of non-negative int dims, and ``data_offsets``
    ``[begin, end]`` with ``0 <= begin <= end <= len(data) - 8 - N``. With ``bounds``,
    the file and header sizes first, and the entry count before any entry is read.
    """
    if len(data) < 8:
        raise _fail(data, f"{len(data)} bytes is shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise _fail(data, f"header length {n} exceeds the file ({len(data)} bytes); truncated?")
    if n > MAX_HEADER_BYTES:
        raise _fail(data, f"header length {n} exceeds {MAX_HEADER_BYTES} bytes")
    if bounds is not None:
        _check_sizes(data, n, bounds)
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(data, f"header is not UTF-8 JSON ({exc})") from None
    except RecursionError:
        raise _fail(data, "header nests too deeply") from None
    if not isinstance(header, dict):
        raise _fail(data, "header is not a JSON object")
    entries = len(header) - ("__metadata__" in header)
    if bounds is not None and entries > bounds.entries:
        raise _fail(data, f"{entries} tensors where this architecture has {bounds.entries}")
    body = len(data) - 8 - n
    for key, entry in header.items():
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in entry.items()
            ):
                raise _fail(data, "__metadata__ must map strings to strings")
            continue
        if not isinstance(entry, dict):
            raise _fail(data, f"entry {key!r} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str):
            raise _fail(data, f"tensor {key!r} has no dtype")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise _fail(data, f"tensor {key!r} has a malformed shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= body
        ):
            raise _fail(data, f"tensor {key!r} has data_offsets {offsets!r} outside the file")
    return header


def _check_sizes(data: bytes, n: int, bounds: FileBounds) -> None:
    if n > bounds.header_bytes:
        raise _fail(data, f"header length {n} exceeds the {bounds.header_bytes} bytes this architecture needs")
    if len(data) > bounds.file_bytes:
        raise _fail(data, f"{len(data)} bytes exceeds the {bounds.file_bytes} bytes this architecture needs")


def load_tensors(data: bytes, bounds: FileBounds | None = None) -> dict[str, torch.Tensor]:
    """Parse safetensors ``data`` into CPU tensors; never unpickles. ``bounds``: see
    ``parse_header``.

    Raises:
        InvalidSafetensorsError: anything that is not a well-formed safetensors file.
    """
    parse_header(data, bounds)
    try:
        return dict(_st_load(bytes(data)))
    except Exception as exc:  # safetensors raises its own error types and ValueError
        raise InvalidSafetensorsError(f"not a valid safetensors file: {exc}") from None


def read_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file (empty when absent)."""
    meta = parse_header(data).get("__metadata__", {})
    return dict(meta)


def dump_tensors(
    tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> bytes:
    """Serialise ``tensors`` (copied to contiguous CPU tensors) as safetensors bytes."""
    # clone() so tensors sharing storage (tied weights, views) serialise independently.
    plain = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    data = bytes(_st_save(plain, metadata=dict(metadata) if metadata else None))
    return _sorted_metadata(data) if metadata and len(metadata) > 1 else data


def _sorted_metadata(data: bytes) -> bytes:
    """``data`` with its ``__metadata__`` keys sorted. safetensors writes them in hash
    order, which differs between runs; content-addressed files need one byte string
    per content. The header keeps its length (same characters, space padding)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(text) > n:  # not expected; the file is valid either way
        return data
    return data[:8] + text.ljust(n, b" ") + data[8 + n :]
