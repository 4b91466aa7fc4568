"""Content digests of tensor dictionaries.

The one definition of a tensor digest, shared by ticket ids (``nirvana.lottery.tickets.manifest``) and
dataset fingerprints (``nirvana.lottery.data.tasks``), so the two can never drift apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import torch


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``: the dtype string that enters digests."""
    return str(dtype).removeprefix("torch.")


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 hex over ``tensors`` sorted by name.

    For each tensor, in name order, the hash takes: the UTF-8 bytes of the compact JSON
    ``[name, dtype, shape]`` (``["fc1.weight","float32",[300,784]]``), a newline, the
    byte length of the data as an 8-byte little-endian integer, then the raw bytes of
    the contiguous CPU tensor (little-endian; ``bool`` as one byte each). The length
    prefixes make the encoding unambiguous. Nothing else (no file metadata, no dict
    order, no device) changes the digest.
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        head = json.dumps([name, dtype_name(t.dtype), list(t.shape)], separators=(",", ":"))
        h.update(head.encode("utf-8") + b"\n")
        # view(uint8) reinterprets the bytes without a copy; reshape(-1) first because a
        # 0-d tensor cannot be viewed as a different element size.
        raw = t.reshape(-1).view(torch.uint8).numpy()
        h.update(int(raw.nbytes).to_bytes(8, "little"))
        h.update(raw.tobytes())  # a copy, but of one tensor at a time
    return h.hexdigest()
