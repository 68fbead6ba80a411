"""Column-mapping specs: how a user's own log maps onto the canonical interaction log.

```yaml
columns: {tenure_months: recency, channel: channel}   # canonical: theirs
activity:                      # optional: without it (and no activity column) only the
                               # openness model is trained
  column: segment
  values: {"Mens E-Mail": advise_new_uses, "No E-Mail": none}
propensity: 0.3333             # a number, or a column name
success: visit                 # a 0/1 column, or {column: y, positive: "yes"}
features: [history, zip_code]  # extra columns used as features; or with their kind:
# features: {history: number, zip_code: category}   (undeclared: inferred from the data)
economics: {value_of_success: 1.0, cost_per_second: 0.0}   # optional
reward: retained_60d           # optional: ve_success (default), accepted, retained_30d,
                               # retained_60d, retained_90d, upgraded, or weights:
# reward: {ve_success: 1, accepted: 0.5, retained_60d: 2}
values:                        # optional: your values -> vea's, per canonical column
  channel: {電話: voice, チャット: chat, メール: email}
  switching_effort: {低: low, 高: high, 不明: null}   # null: a missing value
missing: [ー, なし]            # optional: words that mean an empty cell, in any column
timezone: Asia/Tokyo           # optional: the zone of times written without an offset
encoding: cp932                # optional: how a CSV that is not UTF-8 is encoded
```

The reward's parts other than ``success`` are read from columns of the same name (or
mapped under ``columns:``); ``vea train --reward`` overrides the spec's.

Columns the data already has under a canonical name (``issue_type``, ``ve_success``,
``activity``...) pass through as they are, so a spec that only sets ``economics:`` or adds
one feature keeps the rest of the log. Two exceptions, both the spec's own word: a
canonical column the spec fills itself (under ``columns:``, ``activity``, ``propensity``
or ``success``) comes from the spec's source, and a column the spec reads as the source
of another one is not also taken under its own name (Hillstrom's ``segment`` is the
e-mail arm, mapped to ``activity``: it is no customer segment).

``values:`` maps the values of a canonical column (after ``columns:``) as
``activity.values`` maps the activity's: a value it does not list is refused, naming the
row and the value, so a model never learns ``電話`` where live decisions send ``voice``.
``channel`` and ``switching_effort`` map onto the ids the decision API takes. A value
mapped to ``null`` is a missing value. Values match as text (``1`` matches 1, not 1.0).

``missing:`` lists words that mean an empty cell (``ー``, ``なし``, ``-``), in every column
the log has; a word a ``values:`` or ``activity.values`` mapping lists for that column is
a value there, not a missing one (``提案: なし`` can be the activity ``none``).

``timezone:`` (an IANA name such as ``Asia/Tokyo``) is the zone of timestamps written
without an offset (``2026/11/27 9:05``); without it they are read as UTC. A timestamp
with an offset (``+09:00``, ``Z``, a timezone-aware Parquet column) keeps its own.

``encoding:`` (e.g. ``cp932``, what Excel writes in Japan) is how a CSV that is not UTF-8
is read. UTF-8, with or without a byte order mark, is always read as UTF-8: a model
trained on a CP932 export still reads the same log saved as UTF-8.

``success: {column, positive}``: a number matches as a number (``1`` matches ``1.0``),
a YAML boolean (unquoted ``yes``, ``true``) matches yes/true/on, 1 or a boolean true
(``no``/``false``: no/false/off, 0, false), anything else as the same text.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import yaml

from models.activities import ACTIONS, CHANNELS
from models.economics import Economics
from models.schema import COLUMN_BY_NAME, LABEL, REWARD_PARTS, Reward, RewardError

KNOWN_KEYS = {
    "columns",
    "activity",
    "propensity",
    "success",
    "features",
    "economics",
    "reward",
    "values",
    "timezone",
    "encoding",
    "missing",
}


FEATURE_KINDS = ("number", "category")

# ``Spec.apply`` records here (in the frame's ``attrs``) the user's column behind each
# canonical one it mapped, so that validation names the column the user knows
# (``training.loading.validate_log``: "field recency (tenure_months)"), on every path
# that validates a mapped frame (local loading and Dask partitions alike).
SOURCES_ATTR = "vea_spec_sources"
# The spec's ``timezone:`` (in the frame's ``attrs`` likewise): validation reads
# timestamps without an offset as local times there.
TIMEZONE_ATTR = "vea_spec_timezone"

# The values the decision API takes for these columns (service/schemas.py): a mapping
# onto anything else would teach the model a value no live decision sends.
API_VALUES: dict[str, tuple[str, ...]] = {
    "channel": CHANNELS,
    "switching_effort": ("low", "high"),
}

# How YAML 1.1 writes booleans: an unquoted ``positive: yes`` arrives as True, while the
# column holds the word as it was written.
TRUE_WORDS = frozenset({"true", "yes", "on"})
FALSE_WORDS = frozenset({"false", "no", "off"})


class SpecError(ValueError):
    """A spec file that cannot be used, with the key at fault in the message."""


class SpecColumnsMissing(SpecError):
    """The data lacks columns the spec names (often: data meant for another spec)."""


@dataclass
class Spec:
    columns: dict[str, str] = field(default_factory=dict)
    activity_column: str | None = None
    activity_values: dict[str, str] | None = None
    propensity: float | str | None = None
    success_column: str | None = None
    success_positive: Any = None
    features: list[str] = field(default_factory=list)
    # Declared kinds of some features ("number" or "category"); the rest are inferred.
    feature_types: dict[str, str] = field(default_factory=dict)
    economics: dict[str, Any] | None = None
    reward: Reward | None = None
    # canonical column: {their value: vea's value, or None for missing}
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    timezone: str | None = None
    encoding: str | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> Spec:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise SpecError(f"spec file not found: {path}") from exc
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: not valid YAML: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "spec") -> Spec:
        if not isinstance(data, dict):
            raise SpecError(f"{source}: expected a mapping at the top level")
        unknown = set(data) - KNOWN_KEYS
        if unknown:
            raise SpecError(
                f"{source}: unknown keys {sorted(unknown)}; known: {sorted(KNOWN_KEYS)}"
            )
        columns = data.get("columns") or {}
        if not isinstance(columns, dict):
            raise SpecError(f"{source}: 'columns' must map canonical names to your column names")
        for canonical in columns:
            if canonical not in COLUMN_BY_NAME and canonical not in REWARD_PARTS:
                raise SpecError(f"{source}: columns.{canonical} is not a canonical column")
        spec = cls(columns={str(k): str(v) for k, v in columns.items()})
        activity = data.get("activity")
        if activity is not None:
            if isinstance(activity, str):
                activity = {"column": activity}
            if not isinstance(activity, dict) or "column" not in activity:
                raise SpecError(f"{source}: 'activity' needs a 'column'")
            spec.activity_column = str(activity["column"])
            values = activity.get("values")
            if values is not None:
                bad = {k: v for k, v in values.items() if v not in ACTIONS}
                if bad:
                    raise SpecError(
                        f"{source}: activity.values maps to unknown activities {bad}; "
                        f"use one of {list(ACTIONS)}"
                    )
                spec.activity_values = {str(k): str(v) for k, v in values.items()}
        propensity = data.get("propensity")
        if isinstance(propensity, bool):
            raise SpecError(f"{source}: propensity must be a number or a column name")
        if isinstance(propensity, int | float):
            if not 0 < float(propensity) <= 1:
                raise SpecError(f"{source}: propensity {propensity} is outside (0, 1]")
            spec.propensity = float(propensity)
        elif propensity is not None:
            spec.propensity = str(propensity)
        success = data.get("success")
        if isinstance(success, dict):
            if "column" not in success:
                raise SpecError(f"{source}: success needs a 'column'")
            spec.success_column = str(success["column"])
            positive = success.get("positive")
            if isinstance(positive, list | dict):
                raise SpecError(f"{source}: success.positive must be one value, got {positive!r}")
            spec.success_positive = positive
        elif success is not None:
            spec.success_column = str(success)
        features = data.get("features") or []
        if isinstance(features, dict):
            for name, kind in features.items():
                if kind is not None and kind not in FEATURE_KINDS:
                    raise SpecError(
                        f"{source}: features.{name}: {kind!r} is not a kind; use one of "
                        f"{list(FEATURE_KINDS)} (or leave it empty to infer it)"
                    )
            spec.feature_types = {str(k): str(v) for k, v in features.items() if v is not None}
        elif not isinstance(features, list):
            raise SpecError(
                f"{source}: 'features' must be a list of column names, or a mapping of "
                "column names to number / category"
            )
        spec.features = [str(f) for f in features]
        if data.get("economics") is not None:
            try:
                Economics.from_dict(data["economics"])
            except (ValueError, TypeError) as exc:
                raise SpecError(f"{source}: economics: {exc}") from exc
            spec.economics = dict(data["economics"])
        if data.get("reward") is not None:
            try:
                spec.reward = Reward.from_dict(data["reward"])
            except RewardError as exc:
                raise SpecError(f"{source}: {exc}") from exc
        spec.values = _value_maps(data.get("values"), source)
        spec.missing = _missing_words(data.get("missing"), source)
        spec.timezone = _timezone(data.get("timezone"), source)
        spec.encoding = _encoding(data.get("encoding"), source)
        return spec

    def to_dict(self) -> dict[str, Any]:
        features: list[str] | dict[str, str | None] = list(self.features)
        if self.feature_types:
            features = {name: self.feature_types.get(name) for name in self.features}
        out: dict[str, Any] = {"columns": dict(self.columns), "features": features}
        if self.activity_column:
            out["activity"] = {"column": self.activity_column, "values": self.activity_values}
        if self.propensity is not None:
            out["propensity"] = self.propensity
        if self.success_column:
            out["success"] = (
                {"column": self.success_column, "positive": self.success_positive}
                if self.success_positive is not None
                else self.success_column
            )
        if self.economics is not None:
            out["economics"] = self.economics
        if self.reward is not None and not self.reward.is_default:
            out["reward"] = (
                dict(self.reward.weights) if self.reward.name == "weighted" else self.reward.name
            )
        if self.values:
            out["values"] = {name: dict(mapping) for name, mapping in self.values.items()}
        if self.missing:
            out["missing"] = list(self.missing)
        if self.timezone:
            out["timezone"] = self.timezone
        if self.encoding:
            out["encoding"] = self.encoding
        return out

    def success_words(self) -> str | None:
        """What the success label holds in the user's words (None: the spec maps none):
        a bundle trained on Hillstrom's ``visit`` must not describe its reward as a VES
        answer."""
        if not self.success_column:
            return None
        which = self.success_column
        if self.success_positive is not None:
            which = f"{which} = {self.success_positive}"
        return f"{which} (the spec's success column, learned as {LABEL})"

    def feature_kinds(self) -> dict[str, str | None]:
        """Every extra feature with its declared kind (None: inferred from the data)."""
        return {name: self.feature_types.get(name) for name in self.features}

    def sources(self) -> dict[str, str]:
        """The user's column behind each canonical column the spec fills from one
        (canonical: theirs); a fixed ``propensity`` number has none."""
        out = dict(self.columns)
        if self.activity_column:
            out["activity"] = self.activity_column
        if isinstance(self.propensity, str):
            out["propensity"] = self.propensity
        if self.success_column:
            out[LABEL] = self.success_column
        return out

    def passed_through(self, data_columns: Iterable[str]) -> list[str]:
        """The data's columns with a canonical name that the spec takes as they are: all
        but those the spec fills itself (its mapping wins) and those it reads as the
        source of another column (see the module's docstring)."""
        sources = self.sources()
        filled = set(sources) | ({"propensity"} if self.propensity is not None else set())
        read = set(sources.values())
        return [
            name
            for name in data_columns
            if name in COLUMN_BY_NAME and name not in filled and name not in read
        ]

    def apply(self, raw: pd.DataFrame, *, require_outcome: bool = True) -> pd.DataFrame:
        """Rename and derive the canonical columns, and pass the data's own canonical
        columns through (``passed_through``); extra feature columns keep their names.

        ``require_outcome=False`` (scoring): the logged decision's columns (activity,
        propensity, success) are mapped when present, not required: contacts yet to be
        decided have none."""
        needed = list(self.columns.values()) + list(self.features)
        if require_outcome:
            needed += [c for c in (self.activity_column, self.success_column) if c]
            if isinstance(self.propensity, str):
                needed.append(self.propensity)
        missing = sorted({c for c in needed if c not in raw.columns})
        if missing:
            raise SpecColumnsMissing(f"columns named by the spec are not in the data: {missing}")
        raw = self._blank_missing_words(raw)
        out = pd.DataFrame(index=raw.index)
        for canonical, theirs in self.columns.items():
            out[canonical] = raw[theirs]
        for name in self.features:
            if name in COLUMN_BY_NAME:
                raise SpecError(f"feature {name!r} is a canonical column: map it under 'columns'")
            out[name] = raw[name]
        if self.activity_column and self.activity_column in raw:
            values = raw[self.activity_column]
            out["activity"] = (
                values.astype("string").map(self.activity_values)
                if self.activity_values
                else values
            )
            unmapped = values.notna() & out["activity"].isna()
            if unmapped.any():
                row = int(unmapped.to_numpy().argmax()) + 1
                raise SpecError(
                    f"row {row}, field {self.activity_column}: value "
                    f"{values[unmapped].iloc[0]!r} is not in activity.values"
                )
        if isinstance(self.propensity, float):
            out["propensity"] = self.propensity
        elif isinstance(self.propensity, str) and self.propensity in raw:
            out["propensity"] = raw[self.propensity]
        if self.success_column and self.success_column in raw:
            col = raw[self.success_column]
            if self.success_positive is not None:
                positive = _matches(col, self.success_positive)
                if require_outcome and not positive.any() and col.nunique() > 1:
                    # Every label would be a failure although the column holds two
                    # outcomes or more: the spec's value is at fault, not the data (e.g.
                    # positive: 1 on 0.0/1.0 read as text). A column of one value may be a
                    # small file (or Dask partition) without a success: that is no error.
                    seen = ", ".join(repr(v) for v in _examples(col))
                    raise SpecError(
                        f"success.positive {self.success_positive!r} matches no row of column "
                        f"{self.success_column} (values: {seen})"
                    )
                out[LABEL] = pd.array(positive.astype(np.int64), dtype="Int64")
                out.loc[col.isna(), LABEL] = pd.NA
            else:
                out[LABEL] = col
        for name in self.passed_through(raw.columns):
            out[name] = raw[name]
        for name in self._reward_columns():
            if name not in out.columns:
                raise SpecError(
                    f"reward {self.reward.label}: no column {name!r} in the data "
                    "(map it under columns:)"
                )
        for canonical, mapping in self.values.items():
            if canonical in out.columns:
                out[canonical] = self._mapped(canonical, out[canonical], mapping)
        out.attrs[SOURCES_ATTR] = self.sources()
        if self.timezone:
            out.attrs[TIMEZONE_ATTR] = self.timezone
        return out

    def _blank_missing_words(self, raw: pd.DataFrame) -> pd.DataFrame:
        """``raw`` with the ``missing:`` words as empty cells, but for the words a value
        mapping lists for that column (they are values there)."""
        if not self.missing:
            return raw
        mapped: dict[str, set[str]] = {}
        if self.activity_column and self.activity_values:
            mapped.setdefault(self.activity_column, set()).update(self.activity_values)
        for canonical, mapping in self.values.items():
            mapped.setdefault(self.columns.get(canonical, canonical), set()).update(mapping)
        out = raw.copy(deep=False)
        for name in raw.columns:
            values = raw[name]
            if not (
                pd.api.types.is_object_dtype(values)
                or pd.api.types.is_string_dtype(values)
                or isinstance(values.dtype, pd.CategoricalDtype)
            ):
                continue  # numbers, times and flags hold no words
            words = [w for w in self.missing if w not in mapped.get(name, ())]
            hit = values.astype("string").isin(words).to_numpy(dtype=bool, na_value=False)
            if hit.any():
                out[name] = values.mask(hit)
        return out

    def _mapped(self, canonical: str, values: pd.Series, mapping: dict[str, Any]) -> pd.Series:
        """A canonical column through its ``values:`` mapping; a value the mapping does
        not list is refused, naming the row and all such values (to add them at once)."""
        text = values.astype("string")
        known = text.isin(list(mapping)).to_numpy(dtype=bool, na_value=False)
        unmapped = values.notna().to_numpy() & ~known
        if unmapped.any():
            theirs = self.columns.get(canonical, canonical)
            shown = f"{theirs} ({canonical})" if theirs != canonical else canonical
            row = int(unmapped.argmax()) + 1
            others = ", ".join(repr(v) for v in _examples(text[unmapped]))
            raise SpecError(
                f"row {row}, field {shown}: value {text[unmapped].iloc[0]!r} is not in "
                f"values.{canonical} (values it does not map: {others}; map each, or to "
                "null for a missing value)"
            )
        return text.astype(object).map(mapping)  # a value mapped to null: missing

    def _reward_columns(self) -> list[str]:
        """Columns the spec's reward reads besides the success label."""
        if self.reward is None or self.reward.is_default:
            return []
        return [p for p in self.reward.parts if p != LABEL]


def values_live_decisions_lack(frame: pd.DataFrame, limit: int = 5) -> dict[str, list[str]]:
    """Per column the decision API restricts (``API_VALUES``), the log's values it does not
    take (a few): learned, they never match a live contact (``電話`` where the API sends
    ``voice``), so a served model would treat every contact as an unseen value."""
    out: dict[str, list[str]] = {}
    for name, allowed in API_VALUES.items():
        if name in frame.columns:
            seen = frame[name].dropna().astype(str).unique()
            foreign = [v for v in seen if v not in allowed]
            if foreign:
                out[name] = foreign[:limit]
    return out


def _value_maps(data: Any, source: str) -> dict[str, dict[str, Any]]:
    """The ``values:`` block, checked: canonical columns, one value each (or null)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: 'values' must map canonical columns to {{yours: vea's}}")
    out: dict[str, dict[str, Any]] = {}
    for canonical, mapping in data.items():
        if canonical == "activity":
            raise SpecError(f"{source}: values.activity: map the activity under activity.values")
        if canonical == LABEL:
            raise SpecError(
                f"{source}: values.{LABEL}: say which value is a success with "
                "success: {column: ..., positive: ...}"
            )
        if canonical not in COLUMN_BY_NAME:
            raise SpecError(f"{source}: values.{canonical} is not a canonical column")
        if not isinstance(mapping, dict) or not mapping:
            raise SpecError(f"{source}: values.{canonical} must map your values to vea's")
        for theirs, ours in mapping.items():
            if isinstance(ours, list | dict):
                raise SpecError(f"{source}: values.{canonical}.{theirs}: one value, or null")
        allowed = API_VALUES.get(canonical)
        if allowed is not None:
            bad = {k: v for k, v in mapping.items() if v is not None and v not in allowed}
            if bad:
                raise SpecError(
                    f"{source}: values.{canonical} maps to values the decision API does not "
                    f"take {bad}; use one of {list(allowed)} (or null)"
                )
        out[str(canonical)] = {str(k): v for k, v in mapping.items()}
    return out


def _missing_words(data: Any, source: str) -> list[str]:
    """The ``missing:`` words: text only (a number such as -1 is a value to validate)."""
    if data is None:
        return []
    words = [data] if isinstance(data, str) else data
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise SpecError(
            f"{source}: 'missing' must be a list of words that mean an empty cell, "
            f"e.g. [ー, なし] (got {data!r})"
        )
    return list(words)


def _timezone(data: Any, source: str) -> str | None:
    if data is None:
        return None
    try:
        ZoneInfo(str(data))
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a directory
        raise SpecError(
            f"{source}: timezone {data!r} is not a time zone name; use an IANA name such "
            "as Asia/Tokyo or UTC"
        ) from exc
    return str(data)


def _encoding(data: Any, source: str) -> str | None:
    if data is None:
        return None
    try:
        codecs.lookup(str(data))
    except LookupError as exc:
        raise SpecError(
            f"{source}: encoding {data!r} is unknown; e.g. cp932 (Excel's Japanese CSV), utf-8"
        ) from exc
    return str(data)


def _matches(values: pd.Series, positive: Any) -> np.ndarray:
    """Which values are ``success.positive``: as numbers when it is one (a column of
    0.0/1.0, or "1.0" in a CSV, must match ``1``), by the words YAML reads as booleans,
    else as the same text."""
    text = values.astype("string").str.strip()
    if isinstance(positive, str) and positive.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        positive = positive.strip().lower() in TRUE_WORDS  # a quoted "yes" means the same
    if isinstance(positive, bool | np.bool_):
        words = TRUE_WORDS if positive else FALSE_WORDS
        match = text.str.lower().isin(words).to_numpy(dtype=bool, na_value=False)
        number: float | None = 1.0 if positive else 0.0
    else:
        match = (text == str(positive).strip()).to_numpy(dtype=bool, na_value=False)
        number = _number(positive)
    if number is not None:
        numeric = pd.to_numeric(values.astype("object").map(_number), errors="coerce")
        match = match | (numeric == number).to_numpy(dtype=bool, na_value=False)
    return match


def _number(value: Any) -> float | None:
    """``value`` as a number (booleans count as 1 and 0, text that is a number as that
    number); None when it is none."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _examples(values: pd.Series, limit: int = 10) -> list[Any]:
    """A few distinct values of a column, for a message."""
    seen = values.dropna().unique()[:limit]
    return [v.item() if isinstance(v, np.generic) else v for v in seen]
