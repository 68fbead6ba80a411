"""Report use cases: load the period's decisions (``service.export``) and hand plain columns
to the pure computations (``models.value_report``, ``models.drift``,
``models.opportunities``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from models.activities import ACTIONS
from models.bundle import BundleError, read_manifest
from models.decision import DEFAULT_BANDS
from models.drift import calibration_by_band, feature_psi, level
from models.economics import Economics
from models.openness import MIN_PROPENSITY as OPENNESS_MIN_PROPENSITY
from models.opportunities import DEFAULT_SITUATION, MIN_ATTEMPTS, organic_opportunities
from models.registry import Registry, RegistryError
from models.schema import Reward
from models.value_report import ValueSettings, value_report
from service.config import Settings, read_value_config
from service.db import iso_utc, to_naive_utc
from service.export import decision_frame, shadow_inputs, surveys_pending


def value_settings(settings: Settings, reward: Reward | None = None) -> ValueSettings:
    """Money values, declared success measures and the reported reward: ``VEA_*``
    settings, overridden by the fields of the YAML file ``VEA_VALUE_CONFIG`` when set
    (read and checked by ``service.config.read_value_config``, as at start-up),
    overridden by ``reward`` (the query)."""
    measures = settings.declared_measures()
    fields = read_value_config(settings.value_config) if settings.value_config else {}
    return ValueSettings(
        value_of_retention=fields.get("value_of_retention", settings.value_of_retention),
        cost_per_second=fields.get("cost_per_second", settings.cost_per_second),
        declared_measures=fields.get("declared_measures", measures),
        declared_at=fields.get("declared_at", settings.success_measures_declared_at or None),
        reward=reward or fields.get("reward", Reward()),
        holdout_share=float(settings.holdout_share),
        experiment=settings.experiment,
    )


def _iso(moment: datetime | None) -> str | None:
    """A period bound as every answer writes times: UTC, marked ``Z`` (a bare
    ``2019-07-01T00:00:00`` read by a reader in Tokyo is nine hours off)."""
    return None if moment is None else iso_utc(to_naive_utc(moment))


def _columns(frame) -> dict[str, list]:
    """Each column as a list, a missing value (None or NaN) as None."""
    return {name: _listed(frame[name]) for name in frame.columns}


class FrameColumns(Mapping[str, Any]):
    """A frame's columns as the pure computations read them, each converted when first
    read (the value report reads about half of them): numbers, flags and times to the
    microsecond as numpy arrays (NaN, NaT missing), which ``models.value_report`` takes
    as they are, any other column as a list with None missing (``_listed``). A float per
    value and back took a second of a cold dashboard at 100,000 decisions."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame
        self._read: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._read:
            self._read[name] = _array_or_list(self._frame[name])
        return self._read[name]

    def __contains__(self, name: object) -> bool:
        return name in self._frame.columns

    def __iter__(self) -> Iterator[str]:
        return iter(self._frame.columns)

    def __len__(self) -> int:
        return len(self._frame.columns)


def _array_or_list(column: pd.Series) -> np.ndarray | list:
    kind = column.dtype.kind
    if kind in "fiub" and isinstance(column.dtype, np.dtype):
        return column.to_numpy(copy=True)
    if isinstance(column.dtype, pd.DatetimeTZDtype) and column.dtype.unit == "us":
        # Naive UTC, as the report reads a time without an offset.
        return column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    return _listed(column)


def _listed(column: pd.Series) -> list:
    # At once, not value by value: that took seconds per page at 100,000 decisions.
    if column.dtype == np.float64:
        values = column.to_numpy()
        out = values.astype(object)
        out[np.isnan(values)] = None
        return out.tolist()
    if isinstance(column.dtype, pd.StringDtype):
        # Text (pandas' own strings): missing ones straight to None, half the time.
        return column.to_numpy(dtype=object, na_value=None).tolist()
    values = column.tolist()
    if column.dtype.kind in "iubM":  # nothing to replace: no None or NaN in these
        return values
    out = np.empty(len(values), dtype=object)
    out[:] = values
    out[pd.isna(out)] = None  # None and NaN (the stored data holds no other missing)
    return out.tolist()


def organic(
    engine,
    start: datetime | None,
    end: datetime | None,
    situation: tuple[str, ...] = DEFAULT_SITUATION,
    min_attempts: int = MIN_ATTEMPTS,
    frame: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Where agents enhance value without vea's suggestion in the period
    (``models.opportunities``); ``frame`` as for ``value``."""
    if frame is None:
        frame = decision_frame(engine, start, end)
    columns = ["activity", "delivered_activity", "offered", "ve_success", "has_outcome"]
    report = organic_opportunities(
        {name: frame[name].tolist() for name in (*columns, *situation)},
        situation=situation,
        min_attempts=min_attempts,
    )
    return {"period": {"from": _iso(start), "to": _iso(end)}, **report}


def value(
    engine,
    settings: Settings,
    start: datetime | None,
    end: datetime | None,
    reward: Reward | None = None,
    frame: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The value report of the period; ``frame``: its ``decision_frame`` when the caller
    has already loaded it (the dashboard shares one between its sections)."""
    if frame is None:
        frame = decision_frame(engine, start, end)
    shadow = _shadow(engine, settings, frame, start, end)
    report = value_report(
        FrameColumns(frame),
        value_settings(settings, reward),
        (_iso(start), _iso(end)),
        shadow=shadow,
    )
    # Answers the survey system sent for contacts whose outcome is still missing: not in
    # any figure yet (a contact counts from its outcome), but a manager should see them.
    report["surveys_pending"] = surveys_pending(engine, start, end) if report["pending"] else 0
    return report


def _economics_of(settings: Settings, versions) -> dict[str, Economics]:
    """The economics each model version decided with (its manifest); the defaults for a
    version the registry no longer has."""
    registry = Registry(settings.registry)
    out = {}
    for version in versions:
        try:
            manifest = read_manifest(registry.path_of(str(version)))
            out[version] = Economics.from_dict(manifest.get("economics"))
        except (BundleError, RegistryError, OSError, ValueError):
            out[version] = Economics()
    return out


def _shadow(engine, settings: Settings, frame, start, end) -> dict[str, Any] | None:
    """Inputs of the report's shadow comparison, aligned with ``frame`` (None without
    any shadow decision in the period)."""
    if frame.empty or not frame["shadow_activity"].notna().any():
        return None
    extra = shadow_inputs(engine, start, end).set_index("decision_id")
    n, k = len(frame), len(ACTIONS)
    q = np.full((n, k), np.nan)
    supported = np.zeros((n, k), dtype=bool)
    # Each stored shadow decision's row in the frame (-1: not in it), looked up at once.
    position = pd.Index(frame["decision_id"]).get_indexer(extra.index)
    known = position >= 0
    rows = position[known]
    if rows.size:
        q[rows] = extra[[f"q_{a}" for a in ACTIONS]].to_numpy(dtype=np.float64)[known]
        supported[rows] = extra[[f"can_{a}" for a in ACTIONS]].to_numpy(dtype=bool)[known]
    # Each version's economics once, then spread to its rows: asked per row, the costs
    # took most of a second at 100,000 decisions.
    codes, versions = pd.factorize(frame["model_version"].astype(str))
    economics = _economics_of(settings, set(versions))
    value_of_success = np.array([economics[v].value_of_success for v in versions])
    costs = np.array([economics[v].action_costs() for v in versions]).reshape(len(versions), k)
    return {
        "q": q,
        "supported": supported,
        "value_of_success": value_of_success[codes],
        "costs": costs[codes].reshape(n, k),
    }


def drift(
    engine,
    settings: Settings,
    registry: Registry,
    start: datetime | None,
    end: datetime | None,
    frame: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """PSI of live features against the champion's training histograms, and calibration;
    ``frame`` as in ``value``."""
    champion = registry.champion()
    references: dict[str, Any] = {}
    if champion is not None:
        references = registry.load(champion).manifest.get("drift_reference") or {}
    if frame is None:
        frame = decision_frame(engine, start, end)
    columns = FrameColumns(frame)
    live = {name: columns[name] for name in references if name in frame}
    psi = feature_psi(references, live)
    attempts = frame[(frame["activity"] != "none") & frame["ve_success"].notna()]
    # Weighted as the openness model is trained (``training.fit.openness_weights``):
    # openness is the success of an average activity, and an exploring service serves
    # the model's best more often, whose success runs above it. (Without exploration
    # every weight is 1 and the rate is the model's own choice's: see the README.)
    propensity = attempts["propensity"].to_numpy(dtype=float)
    calibration = calibration_by_band(
        attempts["openness"].to_numpy(dtype=float),
        attempts["ve_success"].to_numpy(dtype=float),
        DEFAULT_BANDS,
        weights=1.0 / np.clip(np.nan_to_num(propensity, nan=1.0), OPENNESS_MIN_PROPENSITY, 1.0),
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
