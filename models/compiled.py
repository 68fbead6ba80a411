"""LightGBM forests compiled to native code with lleaves (LLVM): same predictions, faster.

Walking hundreds of trees through LightGBM costs ~30 ns per tree and row, which caps
batch scoring and puts six action rows at several times one predict. Compiled, the same
forest predicts exactly the same numbers (float64) an order of magnitude faster.

Compilation takes seconds, so the machine code is cached on disk under a key made of the
model text, the compiler versions and the CPU architecture; the cache is trusted code
and must live in a directory only this service writes (``var/cache/compiled`` by
default). Compilation is optional: without lleaves, or when it fails, callers keep
LightGBM's own predictor and nothing else changes.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import logging
import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np

log = logging.getLogger("vea.compiled")


class CompiledForest:
    """Predicts like ``Booster.predict`` (objective transform applied) from native code."""

    def __init__(self, model, n_features: int) -> None:
        self._model = model  # keeps the execution engine (the machine code) alive
        self._entry = model._c_entry_func
        self.n_features = n_features

    def predict(self, x: np.ndarray, n_jobs: int | None = None) -> np.ndarray:
        return self._model.predict(x, n_jobs=n_jobs)

    def predict_into(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Hot path: C-contiguous float64 rows into a preallocated float64 buffer, one thread."""
        self._entry(
            x.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            0,
            x.shape[0],
        )
        return out

    def bind(self, x: np.ndarray, out: np.ndarray) -> Callable[[], np.ndarray]:
        """``predict_into`` for buffers reused on every call, as a no-argument callable.

        Making the two ctypes pointers costs more than the prediction of a few rows, so
        they are made once here. The caller refills ``x`` in place (same shape) and keeps
        it; the pointers keep both arrays alive, the closure keeps the machine code."""
        if x.dtype != np.float64 or out.dtype != np.float64:
            raise TypeError("compiled forests read and write float64")
        if x.ndim != 2 or x.shape[1] != self.n_features or len(out) < x.shape[0]:
            raise ValueError(f"need rows of {self.n_features} features, one output per row")
        if not (x.flags.c_contiguous and out.flags.c_contiguous):
            raise ValueError("compiled forests need C-contiguous buffers")
        x_ptr = x.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        out_ptr = out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        rows = x.shape[0]

        def predict() -> np.ndarray:
            self._entry(x_ptr, out_ptr, 0, rows)
            return out

        return predict


def _cache_key(model_text: str) -> str:
    import lleaves
    import llvmlite

    digest = hashlib.sha256(model_text.encode())
    for part in (
        getattr(lleaves, "__version__", "lleaves"),
        llvmlite.__version__,
        platform.machine(),
        platform.python_version(),
    ):
        digest.update(b"\0" + str(part).encode())
    return digest.hexdigest()


def compile_booster(
    booster: lgb.Booster, cache_dir: str | Path, *, cached_only: bool = False
) -> CompiledForest | None:
    """The booster compiled (from the cache when present), or None to keep LightGBM.

    ``cached_only``: load machine code already in the cache, never compile (milliseconds,
    safe on a request path)."""
    try:
        import lleaves
    except ImportError:
        return None
    try:
        text = booster.model_to_string()
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = _cache_key(text)
        target = cache_dir / f"{key}.so"
        if cached_only and not target.exists():
            return None
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as tmp:
            model_file = Path(tmp) / "model.txt"
            model_file.write_text(text)
            model = lleaves.Model(model_file=str(model_file))
            # One compiler per model across processes: gunicorn workers swap together.
            with open(cache_dir / f"{key}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if target.exists():
                    model.compile(cache=str(target))
                else:
                    staged = Path(tmp) / "model.so"
                    model.compile(cache=str(staged))
                    os.replace(staged, target)
        return CompiledForest(model, booster.num_feature())
    except Exception as exc:  # noqa: BLE001 - compilation is an optimisation, never a failure
        log.warning("model compilation failed; using LightGBM", extra={"error": repr(exc)})
        return None
