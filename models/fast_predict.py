"""One-row LightGBM predictions through the C API's "single row fast" entry points.

``Booster.predict`` re-parses its parameters and builds a predictor on every call, which
dominates the cost of scoring one row. LightGBM's C API can prepare that once
(``LGBM_BoosterPredictForMatSingleRowFastInit``) and then predict a row with almost no
overhead; this class keeps one prepared configuration per thread (LightGBM does not
share one safely across threads) and one thread per prediction.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _LIB, _safe_call

_DTYPE_FLOAT64 = 1
PREDICT_NORMAL = 0
PREDICT_RAW = 1
PREDICT_CONTRIB = 3


class FastRowPredictor:
    """Predicts a float64 row of ``n_features`` values for one booster and predict type."""

    def __init__(self, booster: lgb.Booster, predict_type: int = PREDICT_NORMAL) -> None:
        self.booster = booster  # keeps the native booster alive as long as we are
        self.predict_type = predict_type
        self.n_features = booster.num_feature()
        width = booster.num_model_per_iteration()
        if predict_type == PREDICT_CONTRIB:
            width *= self.n_features + 1
        self.width = width
        self._local = threading.local()

    def _state(self):
        state = getattr(self._local, "state", None)
        if state is None:
            handle = ctypes.c_void_p()
            _safe_call(
                _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                    self.booster._handle,
                    ctypes.c_int(self.predict_type),
                    ctypes.c_int(0),
                    ctypes.c_int(-1),
                    ctypes.c_int(_DTYPE_FLOAT64),
                    ctypes.c_int32(self.n_features),
                    ctypes.c_char_p(b"num_threads=1"),
                    ctypes.byref(handle),
                )
            )
            out = np.empty(self.width, dtype=np.float64)
            out_len = ctypes.c_int64(0)
            # The output pointers are made once per thread: per call they cost about as
            # much as a small forest's prediction.
            state = (
                handle,
                out,
                out_len,
                ctypes.byref(out_len),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            )
            self._local.state = state
        return state

    def predict(self, row: np.ndarray) -> np.ndarray:
        """Prediction for one contiguous float64 row; returns a reused buffer (copy to keep)."""
        return self._predict_at(row.ctypes.data_as(ctypes.c_void_p))

    def bind(self, row: np.ndarray) -> Callable[[], np.ndarray]:
        """``predict(row)`` for a row buffer refilled in place, as a no-argument callable
        (the row's pointer made once; it keeps the row alive)."""
        if row.dtype != np.float64 or row.shape != (self.n_features,):
            raise ValueError(f"need one float64 row of {self.n_features} features")
        if not row.flags.c_contiguous:
            raise ValueError("need a C-contiguous row")
        row_ptr = row.ctypes.data_as(ctypes.c_void_p)
        return lambda: self._predict_at(row_ptr)

    def _predict_at(self, row_ptr: ctypes.c_void_p) -> np.ndarray:
        handle, out, _, out_len_ref, out_ptr = self._state()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFast(handle, row_ptr, out_len_ref, out_ptr)
        )
        return out
