"""Reading interaction logs (CSV or Parquet) and validating them against the schema.

Every problem is reported with its row (1-based, header not counted) and field, and
nothing is returned until the whole log is valid: a command that gets a DataError
writes nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from models import tables
from models.activities import ACTIONS, NONE
from models.schema import COLUMN_BY_NAME, LABEL
from training.spec import Spec, SpecError

MAX_REPORTED = 20


class DataError(ValueError):
    """A log that cannot be used; the message names rows and fields."""

    def __init__(self, problems: list[str] | str, source: str = "") -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        prefix = f"{source}: " if source else ""
        shown = self.problems[:MAX_REPORTED]
        more = len(self.problems) - len(shown)
        text = "; ".join(shown) + (f"; and {more} more problems" if more > 0 else "")
        super().__init__(prefix + text)


def file_fingerprint(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_table(path: str | Path) -> pd.DataFrame:
    """Read CSV or Parquet by extension, turning parser failures into DataError."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet" or path.is_dir():
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".gz"):
            frame = pd.read_csv(path, low_memory=False)
        else:
            raise DataError(f"{path}: unknown format {suffix!r}; use .csv or .parquet")
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from exc
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot read: {exc}") from exc
    if frame.empty:
        raise DataError(f"{path}: no data rows")
    return frame


def _rows(mask: pd.Series) -> list[int]:
    return (np.flatnonzero(mask.to_numpy()) + 1).tolist()


def _report(problems: list[str], rows: list[int], field: str, what: str, values: pd.Series) -> None:
    for row in rows[:MAX_REPORTED]:
        problems.append(f"row {row}, field {field}: {what} (got {values.iloc[row - 1]!r})")
    if len(rows) > MAX_REPORTED:
        problems.append(f"field {field}: {len(rows) - MAX_REPORTED} more rows {what}")


def validate_log(
    frame: pd.DataFrame, *, require_outcome: bool = True, source: str = ""
) -> pd.DataFrame:
    """Check types and ranges of every canonical column present; return a typed copy."""
    problems: list[str] = []
    out = frame.copy()
    if require_outcome and LABEL not in out.columns:
        problems.append(f"missing column {LABEL!r} (the success label; map it with a spec)")
    if "activity" in out.columns and "propensity" not in out.columns:
        problems.append("column 'activity' needs 'propensity' (the logging policy's probability)")
    for name in out.columns:
        column = COLUMN_BY_NAME.get(name)
        if column is None:
            continue
        values = out[name]
        present = values.notna()
        if column.kind in ("float", "int", "binary"):
            if values.dtype == bool:
                values = values.astype(int)
            numeric = pd.to_numeric(values, errors="coerce")
            bad_type = present & numeric.isna()
            _report(problems, _rows(bad_type), name, "not a number", values)
            ok = present & ~bad_type
            if column.kind in ("int", "binary"):
                frac = ok & (numeric != np.floor(numeric))
                _report(problems, _rows(frac), name, "not a whole number", values)
            if column.kind == "binary":
                _report(problems, _rows(ok & ~numeric.isin([0, 1])), name, "must be 0 or 1", values)
            if column.minimum is not None:
                low = (
                    numeric <= column.minimum
                    if column.exclusive_minimum
                    else numeric < column.minimum
                )
                op = ">" if column.exclusive_minimum else ">="
                _report(problems, _rows(ok & low), name, f"must be {op} {column.minimum:g}", values)
            if column.maximum is not None:
                _report(
                    problems,
                    _rows(ok & (numeric > column.maximum)),
                    name,
                    f"must be <= {column.maximum:g}",
                    values,
                )
            out[name] = numeric.astype("float64")
        elif column.kind == "timestamp":
            parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
            _report(problems, _rows(present & parsed.isna()), name, "not a timestamp", values)
            out[name] = parsed
        else:
            out[name] = values.astype("string")
            if column.allowed is not None:
                unknown = present & ~out[name].isin(column.allowed)
                _report(
                    problems,
                    _rows(unknown),
                    name,
                    f"unknown activity (use one of {', '.join(column.allowed)})",
                    values,
                )
    if LABEL in out.columns and require_outcome:
        _report(problems, _rows(out[LABEL].isna()), LABEL, "missing", frame[LABEL])
    if "activity" in out.columns:
        _report(problems, _rows(out["activity"].isna()), "activity", "missing", frame["activity"])
        if "propensity" in out.columns:
            _report(
                problems,
                _rows(out["propensity"].isna()),
                "propensity",
                "missing",
                frame["propensity"],
            )
    if "interaction_id" in out.columns:
        dup = out["interaction_id"].notna() & out["interaction_id"].duplicated(keep="first")
        _report(problems, _rows(dup), "interaction_id", "duplicate id", frame["interaction_id"])
    if problems:
        raise DataError(problems, source)
    return out


def load_log(
    path: str | Path, spec: Spec | None = None, *, require_outcome: bool = True
) -> pd.DataFrame:
    """Read, map (when a spec is given) and validate a log. Raises DataError or SpecError."""
    raw = read_table(path)
    try:
        frame = spec.apply(raw, require_outcome=require_outcome) if spec else raw
    except SpecError as exc:
        raise DataError(str(exc), str(path)) from exc
    return validate_log(frame, require_outcome=require_outcome, source=str(path))


def action_codes(frame: pd.DataFrame) -> np.ndarray:
    """Logged actions as indices into ACTIONS."""
    return pd.Categorical(frame["activity"], categories=list(ACTIONS)).codes.astype(np.int64)


def attempted(frame: pd.DataFrame) -> np.ndarray:
    return (frame["activity"] != NONE).to_numpy(dtype=bool)


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """``models.tables.write_table``, with a bad extension reported as a DataError."""
    try:
        return tables.write_table(frame, path)
    except ValueError as exc:
        raise DataError(str(exc)) from exc
