"""The openness model: how likely a value-enhancing conversation is to succeed.

Openness is defined independently of any one activity and of the logging policy's
habits: it estimates the success probability of a value attempt chosen uniformly among
the activities tried in training. Attempted rows are weighted by 1 / (k * propensity),
which turns the logged (biased) attempts into that uniform mix. Scores are
calibrated with isotonic regression on a held-out part, so 0.3 means 3 in 10.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.isotonic import IsotonicRegression

from models.boosting import default_params, fit_booster, probability_objective, split_indices

# Attempts are weighted by 1 / propensity, the propensity clipped here so that a rare
# draw does not carry the fit (training) and the calibration check (the drift report).
MIN_PROPENSITY = 0.01


class OpennessModel:
    """LightGBM classifier plus an isotonic calibration map."""

    def __init__(
        self,
        seed: int = 0,
        calibration_fraction: float = 0.25,
        max_rounds: int = 2000,
        num_threads: int = 0,
    ) -> None:
        self.seed = seed
        self.calibration_fraction = calibration_fraction
        self.max_rounds = max_rounds
        self.num_threads = num_threads

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        sample_weight: np.ndarray | None = None,
        categorical: list[int] | None = None,
        feature_names: list[str] | None = None,
    ) -> OpennessModel:
        y = np.asarray(y, dtype=np.float64)
        if len(np.unique(y)) < 2:
            raise ValueError("openness needs both successes and failures in the training data")
        weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
        train, calib = split_indices(len(y), self.calibration_fraction, self.seed)
        params = default_params(probability_objective(y), self.seed, len(train), self.num_threads)
        self.booster_ = fit_booster(
            params,
            x[train],
            y[train],
            x[calib],
            y[calib],
            weight_train=weight[train],
            weight_valid=weight[calib],
            categorical=categorical,
            feature_names=feature_names,
            max_rounds=self.max_rounds,
        )
        raw = self.booster_.predict(x[calib])
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(raw, y[calib], sample_weight=weight[calib])
        self.calibration_x_ = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.calibration_y_ = np.asarray(iso.y_thresholds_, dtype=np.float64)
        return self

    def calibrate(self, raw: np.ndarray | float) -> np.ndarray:
        """Map raw booster probabilities through the isotonic fit."""
        return np.interp(raw, self.calibration_x_, self.calibration_y_)

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        """Uncalibrated booster probabilities (compiled code when attached)."""
        compiled = getattr(self, "compiled_", None)
        return compiled.predict(x) if compiled is not None else self.booster_.predict(x)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Calibrated success probability per row."""
        return self.calibrate(self.predict_raw(x))

    def calibration_dict(self) -> dict[str, Any]:
        return {"x": self.calibration_x_.tolist(), "y": self.calibration_y_.tolist()}

    @classmethod
    def from_parts(cls, booster: lgb.Booster, calibration: dict[str, Any]) -> OpennessModel:
        model = cls()
        model.booster_ = booster
        model.calibration_x_ = np.asarray(calibration["x"], dtype=np.float64)
        model.calibration_y_ = np.asarray(calibration["y"], dtype=np.float64)
        return model
