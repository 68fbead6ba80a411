"""Which rows of a log a model was trained on, from a sample of its training ids.

A bundle keeps the hashes of a deterministic sample of its training rows' interaction
ids: the ids whose hash falls in one ``modulus``-th of the hash space, a few thousand at
most whatever the size of the log. The same sample of another log's ids then shows what
share of that log the model has seen, in whatever file the rows come (the file's
fingerprint only recognises the very file it was trained on), e.g. a CSV copy of the
training data or a cumulative export that holds the rows an earlier model learned from.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

SAMPLE_TARGET = 4096  # ids kept at most (about 60 kB in the manifest)
HEX_DIGITS = 12  # 48 bits: no collision to speak of among a few thousand ids


def _hashes(ids: Iterable[Any]) -> list[int]:
    return [
        int.from_bytes(hashlib.blake2b(str(i).encode("utf-8"), digest_size=8).digest(), "big")
        for i in ids
    ]


def id_hashes(ids: Iterable[Any]) -> np.ndarray:
    """The 64-bit hashes the sample is drawn from, as an array: a Dask partition's part
    (``training.distributed`` gathers them and draws the sample with ``hash_sample``)."""
    return np.array(_hashes(ids), dtype=np.uint64)


def hash_sample(hashes: Sequence[int] | np.ndarray) -> dict[str, Any]:
    """``{"modulus", "hashes"}`` from every training row's hash (``id_hashes``)."""
    modulus = max(1, math.ceil(len(hashes) / SAMPLE_TARGET))
    kept = sorted({format(int(h), "016x")[:HEX_DIGITS] for h in hashes if int(h) % modulus == 0})
    return {"modulus": modulus, "hashes": kept}


def id_sample(ids: Iterable[Any]) -> dict[str, Any]:
    """``{"modulus", "hashes"}``: the sample of ``ids`` a bundle keeps."""
    return hash_sample(_hashes(ids))


def seen_share(sample: dict[str, Any] | None, ids: Iterable[Any]) -> float | None:
    """The share of ``ids`` the sample's model was trained on (estimated from the ids in
    the sample's part of the hash space), or None when it cannot be told (no sample, or
    none of the ids falls in that part)."""
    if not sample or not sample.get("hashes"):
        return None
    modulus = int(sample["modulus"])
    known = set(sample["hashes"])
    picked = [format(h, "016x")[:HEX_DIGITS] for h in _hashes(ids) if h % modulus == 0]
    if not picked:
        return None
    return float(np.mean([h in known for h in picked]))
