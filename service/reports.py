"""Report use cases: load the period's decisions (``service.export``) and hand plain columns
to the pure computations (``models.value_report``, ``models.drift``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from models.decision import DEFAULT_BANDS
from models.drift import calibration_by_band, feature_psi, level
from models.registry import Registry
from models.value_report import ValueSettings, value_report
from service.config import Settings
from service.export import decision_frame

VALUE_CONFIG_KEYS = {"success_measures", "declared_at", "value_of_retention", "cost_per_second"}


def value_settings(settings: Settings) -> ValueSettings:
    """Money values and declared success measures: ``VEA_*`` settings, overridden by the
    YAML file ``VEA_VALUE_CONFIG`` when set (``success_measures``, ``declared_at``,
    ``value_of_retention``, ``cost_per_second``)."""
    measures = [m.strip() for m in settings.success_measures.split(",") if m.strip()]
    data: dict[str, Any] = {}
    if settings.value_config:
        data = yaml.safe_load(Path(settings.value_config).read_text(encoding="utf-8")) or {}
        unknown = set(data) - VALUE_CONFIG_KEYS
        if unknown:
            raise ValueError(f"{settings.value_config}: unknown keys {sorted(unknown)}")
    declared_at = data.get("declared_at", settings.success_measures_declared_at) or None
    return ValueSettings(
        value_of_retention=float(data.get("value_of_retention", settings.value_of_retention)),
        cost_per_second=float(data.get("cost_per_second", settings.cost_per_second)),
        declared_measures=tuple(data.get("success_measures", measures)),
        declared_at=str(declared_at) if declared_at is not None else None,
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def _columns(frame) -> dict[str, list]:
    return {
        name: [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in col]
        for name, col in ((c, frame[c].tolist()) for c in frame.columns)
    }


def value(
    engine, settings: Settings, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    frame = decision_frame(engine, start, end)
    return value_report(_columns(frame), value_settings(settings), (_iso(start), _iso(end)))


def drift(
    engine,
    settings: Settings,
    registry: Registry,
    start: datetime | None,
    end: datetime | None,
) -> dict[str, Any]:
    """PSI of live features against the champion's training histograms, and calibration."""
    champion = registry.champion()
    references: dict[str, Any] = {}
    if champion is not None:
        references = registry.load(champion).manifest.get("drift_reference") or {}
    frame = decision_frame(engine, start, end)
    live = {name: _columns(frame[[name]])[name] for name in references if name in frame}
    psi = feature_psi(references, live)
    attempts = frame[(frame["activity"] != "none") & frame["ve_success"].notna()]
    calibration = calibration_by_band(
        attempts["openness"].to_numpy(dtype=float),
        attempts["ve_success"].to_numpy(dtype=float),
        DEFAULT_BANDS,
    )
    threshold = settings.drift_psi_threshold
    return {
        "period": {"from": _iso(start), "to": _iso(end)},
        "model_version": champion,
        "has_reference": bool(references),
        "decisions": int(len(frame)),
        "threshold": threshold,
        "features": [
            {
                "feature": name,
                "psi": value,
                "level": level(value),
                "drifted": value is not None and value > threshold,
            }
            for name, value in psi.items()
        ],
        "calibration": calibration,
    }
