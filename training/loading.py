"""Reading interaction logs (CSV or Parquet) and validating them against the schema.

Every problem is reported with its row (1-based, header not counted) and field, and
nothing is returned until the whole log is valid: a command that gets a DataError
writes nothing.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from models import tables
from models.activities import ACTION_INDEX, ACTIONS, NONE
from models.features import category_texts
from models.schema import (
    COLUMN_BY_NAME,
    CONTEXT_FEATURES,
    LABEL,
    VEA_EXPORT_COLUMNS,
    canonical_language,
    language_tag_problem,
)
from training.spec import SOURCES_ATTR, TIMEZONE_ATTR, Spec, SpecColumnsMissing, SpecError

MAX_REPORTED = 20
# Rows named per field and problem: a mistake that hits every row (a spec mapping the
# wrong column) is said once with its count, not as 20 copies that hide how many more.
ROWS_SHOWN = 5


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


def read_table(path: str | Path, encoding: str | None = None) -> pd.DataFrame:
    """Read CSV or Parquet by extension, turning parser failures into DataError.

    A CSV is UTF-8 (a byte order mark is skipped); one that is not is read in
    ``encoding`` when given (a spec's: ``cp932`` for Excel's Japanese CSV)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet" or path.is_dir():
            frame = _read_parquet(path)
        elif suffix in (".csv", ".txt", ".gz"):
            frame = _read_csv(path, encoding)
        else:
            raise DataError(f"{path}: unknown format {suffix!r}; use .csv or .parquet")
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(_not_utf8(path, exc, encoding)) from exc
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot read: {exc}") from exc
    if frame.empty:
        raise DataError(f"{path}: no data rows")
    return frame


# Files and directories a Parquet data set directory holds beside its parts (pyarrow's
# ignore_prefixes): ``.cache``, ``_SUCCESS``, ``_metadata``.
HIDDEN_PREFIXES = (".", "_")


def parquet_files(directory: str | Path) -> list[str]:
    """The parts of a Parquet dataset directory (local, or a URL such as s3://bucket/log/),
    relative to it: every ``*.parquet`` file at any depth, leaving out hidden files and
    directories and those starting with ``_`` (``_SUCCESS``, ``_metadata``), as pyarrow's
    discovery ignores them, and any other file (a lock file, a README, a cache, a ``.pq``
    copy). Both engines read these (``parquet_parts``) and the data fingerprint lists them
    (``training.distributed.data_fingerprint``).

    In Dask's order, numbers by their value (``part.2`` before ``part.10``, as Dask sorts
    the paths it is given): the rows, hence the row numbers of any message, are in the
    same order on both engines."""
    text = str(directory)
    if "://" in text:
        import fsspec

        fs, top = fsspec.core.url_to_fs(text)
        walk, relative, top = fs.walk(top), PurePosixPath, top.rstrip("/")
    else:
        walk, relative, top = os.walk(text), Path, text
    found: list[str] = []
    for root, dirs, files in walk:
        dirs[:] = [d for d in dirs if not d.startswith(HIDDEN_PREFIXES)]
        here = relative(root).relative_to(relative(top))
        found.extend(
            (here / name).as_posix()
            for name in files
            if name.lower().endswith(".parquet") and not name.startswith(HIDDEN_PREFIXES)
        )
    return sorted(found, key=_natural_order)


def _natural_order(name: str) -> list[str | int]:
    """``dask.utils.natural_sort_key``: runs of digits compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def parquet_parts(path: str | Path) -> list[str] | None:
    """The parts (``parquet_files``) both engines read of a Parquet data set directory,
    local or a URL; None when ``path`` is no directory (a file, read as it is). Reading
    the whole directory instead, pyarrow failed on the first file that is no Parquet (a
    ``cache/....lock``) and Dask read hidden and ``.pq`` copies of parts too. A directory
    without a part is refused naming it.

    Each reader takes the parts by their paths below the directory, as when pyarrow lists
    it itself: hive partitions (channel=voice/) are read from below it only, never from a
    ``batch=7/`` above it."""
    text = str(path)
    if "://" in text:
        import fsspec

        fs, top = fsspec.core.url_to_fs(text)
        if not fs.isdir(top):
            return None
    elif not Path(text).is_dir():
        return None
    files = parquet_files(text)
    if not files:
        raise DataError(
            f"{text}: a directory without .parquet files (a Parquet data set's parts end in "
            ".parquet; hidden files and those starting with _ are skipped): give a .csv or "
            ".parquet file, or the directory holding the parts"
        )
    return files


def _read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file, or a dataset directory's parts (``parquet_parts``)."""
    files = parquet_parts(path)
    if files is None:
        return pd.read_parquet(path)
    from pyarrow import fs as pa_fs

    # Paths relative to the directory (see parquet_parts).
    local = pa_fs.SubTreeFileSystem(str(path.resolve()), pa_fs.LocalFileSystem())
    return pd.read_parquet(files, filesystem=local)


def _read_csv(path: Path, encoding: str | None) -> pd.DataFrame:
    used = "utf-8"
    try:
        try:
            frame = pd.read_csv(path, low_memory=False, encoding=used)
        except UnicodeDecodeError:
            if not encoding:
                raise
            used = encoding
            frame = pd.read_csv(path, low_memory=False, encoding=used)
    except pd.errors.ParserError:
        # pandas says "Expected 24 fields in line 9, saw 25", its line counting the
        # header: a short row was "row 8" in every other message. The rows it means, as
        # they are numbered everywhere.
        _refuse_long_rows(path, used)
        raise
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        # A first data row longer than the header is no ParserError: pandas took its
        # extra leading fields as the index and shifted every value one column left.
        _refuse_long_rows(path, used)
    _check_header(path, used)
    # pandas fills a row with fewer fields than the header with missing values without a
    # word: a line cut short (a copy stopped mid-file, an export cut at a size limit)
    # became a row whose outcome was "not known yet", or an error about a missing field.
    # Such a row always ends with a missing value, so a log whose last column is complete
    # (a simulated one, an export) is not parsed again; another is (pyarrow's parser,
    # converting one column: ~0.1 s for 200,000 rows), and only when that finds a short
    # row are the rows numbered (the csv module, ~0.4 s).
    if (
        len(frame.columns) > 1
        and frame.iloc[:, -1].isna().any()
        and _may_have_short_rows(path, used, str(frame.columns[0]))
    ):
        short = _short_rows(path, used, len(frame.columns))
        if short:
            expected = len(frame.columns)
            problems = [
                f"row {row}: {count} field{'s' if count != 1 else ''}, expected {expected}"
                for row, count in short[:ROWS_SHOWN]
            ]
            problems[0] = f"malformed CSV: {problems[0]}"
            if len(short) > ROWS_SHOWN:
                problems.append(f"{len(short) - ROWS_SHOWN:,} more rows with too few fields")
            raise DataError(problems, str(path))
    return frame


def _refuse_long_rows(path: Path, encoding: str) -> None:
    """A DataError naming the data rows with more fields than the header (numbered as
    ``_short_rows`` numbers them); nothing when the csv module finds none."""
    header: int | None = None
    long: list[tuple[int, int]] = []
    row = 0
    try:
        for fields in _csv_records(path, encoding):
            if _blank(fields):
                continue  # pandas skips it
            if header is None:
                header = len(fields)
                continue
            row += 1
            if len(fields) > header:
                long.append((row, len(fields)))
    except (csv.Error, UnicodeDecodeError):
        return  # pandas' own message, then
    if not long:
        return
    problems = [f"row {row}: {count} fields, expected {header}" for row, count in long[:ROWS_SHOWN]]
    problems[0] = f"malformed CSV: {problems[0]}"
    if len(long) > ROWS_SHOWN:
        problems.append(f"{len(long) - ROWS_SHOWN:,} more rows with too many fields")
    raise DataError(problems, str(path))


def _csv_records(path: Path, encoding: str) -> Iterator[list[str]]:
    """The CSV's records as the csv module splits them (blank lines included as [])."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    # "utf-8-sig": a byte order mark is no part of the first column's name (as in pandas).
    text_encoding = "utf-8-sig" if encoding == "utf-8" else encoding
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, 1 << 30))  # pandas reads a field of any length
    try:
        with opener(path, "rt", encoding=text_encoding, newline="") as fh:
            yield from csv.reader(fh)
    finally:
        csv.field_size_limit(limit)


def _blank(fields: list[str]) -> bool:
    """A line pandas skips: empty, or spaces only."""
    return not fields or (len(fields) == 1 and not fields[0].strip(" \t"))


def _check_header(path: Path, encoding: str) -> None:
    """Refuse a header that names a column twice: pandas reads the second as
    ``name.1``, a column nothing uses, and the log trains on the first without a word."""
    header: list[str] = []
    try:
        with contextlib.closing(_csv_records(path, encoding)) as records:
            header = next((fields for fields in records if not _blank(fields)), [])
    except csv.Error:
        return  # pandas read it; its own names are all there is to check
    _refuse_duplicates(header, path)


def _refuse_duplicates(names: Sequence[object], path: Path) -> None:
    places: dict[str, list[int]] = {}
    for number, name in enumerate(names, start=1):
        places.setdefault(str(name), []).append(number)
    twice = {name: where for name, where in places.items() if len(where) > 1}
    if twice:
        problems = []
        for name, where in twice.items():
            times = "twice" if len(where) == 2 else f"{len(where)} times"
            columns = ", ".join(map(str, where[:-1])) + f" and {where[-1]}"
            problems.append(
                f"the header names column {name!r} {times} (columns {columns}): "
                "name each column once"
            )
        raise DataError(problems, str(path))


def _may_have_short_rows(path: Path, encoding: str, first_column: str) -> bool:
    """Whether a row has fewer fields than the header, by pyarrow's CSV parser (quotes
    and newlines in values as pandas reads them); True when it cannot tell."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    found = False

    def invalid(row: pa_csv.InvalidRow) -> str:
        nonlocal found
        # A line of spaces is one "field" to pyarrow and a blank line to pandas.
        if row.actual_columns < row.expected_columns and (
            row.actual_columns > 1 or row.text.strip(" \t\r\n")
        ):
            found = True
        return "skip"

    try:
        pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(use_threads=False, encoding=encoding),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid),
            convert_options=pa_csv.ConvertOptions(include_columns=[first_column]),
        )
    except (pa.ArrowException, ValueError, KeyError, LookupError, OSError):
        return True  # the csv module decides
    return found


def _short_rows(path: Path, encoding: str, expected: int) -> list[tuple[int, int]]:
    """(row, fields) of the data rows with fewer than ``expected`` fields, rows numbered
    as everywhere else (1-based, header not counted, blank lines skipped as pandas skips
    them)."""
    short: list[tuple[int, int]] = []
    row = -1  # the header is row 0
    try:
        for fields in _csv_records(path, encoding):
            if _blank(fields):
                continue  # pandas skips it
            row += 1
            if row and len(fields) < expected:
                short.append((row, len(fields)))
    except csv.Error:
        return []  # pandas parsed it; the csv module's stricter rules do not refuse it
    return short


def _not_utf8(path: Path, exc: UnicodeDecodeError, encoding: str | None = None) -> str:
    """The message for a CSV in another encoding (Shift-JIS exports are common), with
    the first line that does not decode: the decoder's own position is in its buffer."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    where = ""
    with opener(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode(encoding or "utf-8")
            except UnicodeDecodeError as bad:
                where = f" (line {number}, byte 0x{line[bad.start]:02x})"
                break
    name = path.name
    if encoding:
        return (
            f"{path}: neither UTF-8 nor {encoding} text (the spec's encoding){where}: "
            f"{exc.reason}. Name the file's real encoding in the spec, or save it as UTF-8"
        )
    return (
        f"{path}: not UTF-8 text{where}: {exc.reason}. Save it as UTF-8, name its encoding "
        "in a spec (`encoding: cp932` for a CSV saved by Excel in Japan), or convert it, e.g. "
        f"`iconv -f CP932 -t UTF-8 {name} > utf8-{name}` (name the file's real encoding)"
    )


# An undeclared extra feature whose values are nearly all numbers is a number column
# with typos (``history=lots``), not a category: refusing the odd values beats letting
# them turn 64,000 amounts into 64,000 categories, or into silent missing values.
NUMERIC_SHARE = 0.9
TIMESTAMP_EXAMPLE = "2026-06-01T09:30:00Z"


class ColumnsMissing(DataError):
    """The log lacks columns its layout needs: often a log meant for another model/spec."""


def _rows(mask: pd.Series | np.ndarray) -> list[int]:
    return (np.flatnonzero(np.asarray(mask, dtype=bool)) + 1).tolist()


def _plain(value: object) -> str:
    """A value as the user wrote it: ``-3``, ``'yes'``, not numpy's ``np.int64(-3)`` (nor
    ``-3.0`` when a column of whole numbers became floats around a missing value)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return repr(value) if isinstance(value, str) else str(value)


def _report(
    problems: list[str],
    rows: list[int],
    field: str,
    what: str,
    values: pd.Series,
    *,
    show: bool = True,
) -> None:
    for row in rows[:ROWS_SHOWN]:
        got = f" (got {_plain(values.iloc[row - 1])})" if show else ""
        problems.append(f"row {row}, field {field}: {what}{got}")
    if len(rows) > ROWS_SHOWN:
        problems.append(f"field {field}: {len(rows) - ROWS_SHOWN:,} more rows {what}")


# "1,200" or "12,345.5": digits in groups of three, as Excel writes a formatted number.
THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")


def _floats(values: pd.Series) -> np.ndarray:
    """Numbers as float64 (NaN where missing or not a number; nullable dtypes included).

    Text is read as Japanese exports write numbers: full-width digits (１２) as digits
    (NFKC), and commas between groups of three digits as thousands separators."""
    if pd.api.types.is_bool_dtype(values):
        values = values.astype("float64")
    elif pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
        values = values.astype(object).map(_number_text, na_action="ignore")
    numeric = pd.to_numeric(values, errors="coerce")
    return pd.Series(numeric).to_numpy(dtype="float64", na_value=np.nan)


def _number_text(value: object) -> object:
    """A number written as text, in the form ``pd.to_numeric`` reads (other values as
    they are): ``１,２００`` is ``1200``."""
    if not isinstance(value, str):
        return value
    text = unicodedata.normalize("NFKC", value).strip()
    return text.replace(",", "") if THOUSANDS.fullmatch(text) else text


def _numbers_in(values: pd.Series) -> np.ndarray:
    """Which values are numbers (not bools): a timestamp column must not hold them, as
    pandas would read 123456 as nanoseconds after 1970 without a word."""
    if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_bool_dtype(values):
        return np.zeros(len(values), dtype=bool)
    if pd.api.types.is_numeric_dtype(values):
        return values.notna().to_numpy()
    return (
        np.array(
            [
                isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)
                for v in values
            ],
            dtype=bool,
        )
        & values.notna().to_numpy()
    )


def _check_numbers(
    problems: list[str], name: str, values: pd.Series, x: np.ndarray, first_hint: str = ""
) -> np.ndarray:
    """Report values that are not (finite) numbers; the mask of the usable ones."""
    present = values.notna().to_numpy()
    not_number = _rows(present & np.isnan(x))
    if first_hint and not_number:
        _report(problems, not_number[:1], name, f"not a number ({first_hint})", values)
        not_number = not_number[1:]
    _report(problems, not_number, name, "not a number", values)
    _report(problems, _rows(present & np.isinf(x)), name, "not a finite number", values)
    return present & np.isfinite(x)


def _check_feature(problems: list[str], out: pd.DataFrame, name: str, kind: str | None) -> None:
    """An extra feature column (a spec's ``features``): ``number``, ``category``, or
    undeclared (None: numbers when the column is numbers, as training has always done)."""
    values = out[name]
    if kind == "category":
        # A declared category stays one, digits or not, in the text a decision's value
        # has: store ids with one empty cell are floats to pandas, 101.0 is "101".
        out[name] = category_texts(values)
        return
    if kind is None and pd.api.types.is_bool_dtype(values):
        return  # flags are encoded as categories, as before
    x = _floats(values)
    if kind is None and not pd.api.types.is_numeric_dtype(values):
        present = values.notna().to_numpy()
        numbers = int((present & ~np.isnan(x)).sum())
        total = int(present.sum())
        if numbers < NUMERIC_SHARE * total or numbers == total:
            return  # a category column (e.g. zip_code 'Surburban'), as before
        # Counts, not a rounded share: one word in 6,000 values read "100% are numbers".
        hint = (
            f"{numbers:,} of {total:,} values are numbers; if {name} is a category, "
            f"declare it in the spec: features: {{{name}: category}}"
        )
        _check_numbers(problems, name, values, x, hint)
        return
    _check_numbers(problems, name, values, x)
    if kind == "number":
        out[name] = x


def _check_languages(
    problems: list[str], tags: pd.Series, values: pd.Series, field: str = "language"
) -> None:
    """Report values that are no language tag the API would take (e.g. '日本語'): a model
    would learn a category that no live decision can send."""
    # Each distinct value is checked once (a log holds few languages), then rows found
    # in one pass: a column of free text must not cost a scan per value.
    problem_of = {
        tag: problem
        for tag in tags.dropna().unique()
        if (problem := language_tag_problem(str(tag))) is not None
    }
    if not problem_of:
        return
    found = tags.map(problem_of)
    for problem in dict.fromkeys(problem_of.values()):
        rows = _rows(found.eq(problem).to_numpy(dtype=bool, na_value=False))
        _report(problems, rows, field, f"not {problem}", values)


# A date written year, month, day (ISO 8601's 2026-06-01, or 2026/6/1 as Japanese
# exports write it), then anything the parser reads (a time, an offset).
YEAR_FIRST = re.compile(r"\s*\d{4}([-/.])\d{1,2}\1\d{1,2}(?!\d)")
# A date in another order: d/m/y or m/d/y, which only the writer's country decides.
OTHER_ORDER = re.compile(r"\s*\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}(?!\d)")


def _text_not_year_first(values: pd.Series) -> np.ndarray:
    """Which values are text that does not start with a year-first date."""
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return np.zeros(len(values), dtype=bool)
    return np.array([isinstance(v, str) and not YEAR_FIRST.match(v) for v in values], dtype=bool)


def _day_or_month_first(values: pd.Series) -> np.ndarray:
    """Which values are text dates with the day or the month first (``01/02/2026``)."""
    return np.array([isinstance(v, str) and bool(OTHER_ORDER.match(v)) for v in values], dtype=bool)


def _timestamps(values: pd.Series, zone: str | None) -> pd.Series:
    """Timestamps in UTC (NaT where a value is none). A time with an offset (or a
    timezone-aware column) is that instant; one without is a local time in ``zone``, or
    in UTC without one (the canonical log's zone, design section 4)."""
    if zone is None:
        return pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    if pd.api.types.is_datetime64_any_dtype(values):
        local = values
    else:
        try:
            local = pd.to_datetime(values, errors="coerce", format="mixed")
        except ValueError:  # some times with an offset and some without, or several offsets
            instants = values.map(lambda v: _instant(v, zone), na_action="ignore")
            return pd.to_datetime(instants, errors="coerce", utc=True)
    if local.dt.tz is None:
        # A local time that DST skips or repeats is no one instant: refused as NaT.
        local = local.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    return local.dt.tz_convert("UTC")


def _instant(value: object, zone: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        return pd.NaT
    if stamp is pd.NaT or stamp.tzinfo is not None:
        return stamp
    try:
        return stamp.tz_localize(zone)
    except (ValueError, TypeError):  # skipped or repeated by DST
        return pd.NaT


def validate_log(
    frame: pd.DataFrame,
    *,
    require_outcome: bool = True,
    source: str = "",
    features: Mapping[str, str | None] | None = None,
) -> pd.DataFrame:
    """Check types and ranges of every canonical column present; return a typed copy.

    ``require_outcome``: the label column must be there (a row may leave it empty: an
    outcome not known yet).

    ``features``: extra feature columns (a spec's, or a model's) and what they hold,
    ``number``, ``category`` or None (undeclared: inferred as training does)."""
    problems: list[str] = []
    missing_columns = False
    out = frame.copy()
    # A spec-mapped log is named in the user's columns: "field recency (tenure_months)".
    sources: Mapping[str, str] = frame.attrs.get(SOURCES_ATTR) or {}
    # A spec's timezone: the zone of times without an offset (else they are UTC).
    timezone: str | None = frame.attrs.get(TIMEZONE_ATTR)

    def field(name: str) -> str:
        theirs = sources.get(name)
        return f"{theirs} ({name})" if theirs and theirs != name else name

    if require_outcome and LABEL not in out.columns:
        problems.append(f"missing column {LABEL!r} (the success label; map it with a spec)")
        missing_columns = True
    if "activity" in out.columns and "propensity" not in out.columns:
        problems.append("column 'activity' needs 'propensity' (the logging policy's probability)")
        missing_columns = True
    for name in out.columns:
        column = COLUMN_BY_NAME.get(name)
        if column is None:
            continue
        values = out[name]
        present = values.notna().to_numpy()
        shown = field(name)
        if column.kind in ("float", "int", "binary"):
            x = _floats(values)
            ok = _check_numbers(problems, shown, values, x)
            if column.kind == "int":
                frac = ok & (x != np.floor(np.where(ok, x, 0.0)))
                _report(problems, _rows(frac), shown, "not a whole number", values)
                ok &= ~frac
            if column.kind == "binary":  # 29.99 or 0.5 is no 0/1 either: one message
                _report(
                    problems, _rows(ok & ~np.isin(x, (0.0, 1.0))), shown, "must be 0 or 1", values
                )
            with np.errstate(invalid="ignore"):
                if column.minimum is not None:
                    low = x <= column.minimum if column.exclusive_minimum else x < column.minimum
                    op = ">" if column.exclusive_minimum else ">="
                    _report(
                        problems, _rows(ok & low), shown, f"must be {op} {column.minimum:g}", values
                    )
                if column.maximum is not None:
                    _report(
                        problems,
                        _rows(ok & (x > column.maximum)),
                        shown,
                        f"must be <= {column.maximum:g}",
                        values,
                    )
            out[name] = x
        elif column.kind == "timestamp":
            numbers = _numbers_in(values)
            _report(
                problems,
                _rows(numbers),
                shown,
                f"a number, not a timestamp (write a date and time, e.g. {TIMESTAMP_EXAMPLE})",
                values,
            )
            # Only dates written year first, as the README shows them: pandas' "mixed"
            # parsing read 01/02/2026 month first and 13/02/2026 day first, in one file,
            # and a bare 09:05 as today, without a word.
            text = _text_not_year_first(values) & ~numbers
            other_order = text & _day_or_month_first(values)
            year_first = f"write the year first, e.g. {TIMESTAMP_EXAMPLE} or 2026/06/01 9:30"
            _report(
                problems,
                _rows(other_order),
                shown,
                f"not a timestamp: {year_first} (01/02/2026 is 1 February in some "
                "countries, 2 January in others)",
                values,
            )
            _report(
                problems,
                _rows(text & ~other_order),
                shown,
                f"not a timestamp: {year_first}",
                values,
            )
            parsed = _timestamps(values.mask(numbers | text), timezone)
            bad = present & ~numbers & ~text & parsed.isna().to_numpy()
            # In a zone, a local time that daylight saving skips or repeats is none either.
            where = f" in {timezone}" if timezone else ""
            _report(problems, _rows(bad), shown, f"not a timestamp{where}", values)
            out[name] = parsed
        else:
            # Categories as ``category_text`` writes them (a segment code 3, read as 3.0
            # around an empty cell, is "3", as the API's "3"); ids as they are.
            out[name] = (
                category_texts(values) if column.kind == "category" else values.astype("string")
            )
            if name == "language":
                _check_languages(problems, out[name], values, shown)
            if column.allowed is not None:
                unknown = present & ~out[name].isin(column.allowed).to_numpy(
                    dtype=bool, na_value=False
                )
                _report(
                    problems,
                    _rows(unknown),
                    shown,
                    f"unknown activity (use one of {', '.join(column.allowed)})",
                    values,
                )
    for name, kind in (features or {}).items():
        if name in out.columns and name not in COLUMN_BY_NAME:
            _check_feature(problems, out, name, kind)
    # Missing where required: only values that were missing as given (a value that is
    # there but wrong was reported above, once).
    # An empty label is an outcome not known (yet), left out by ``training.fit.apply_reward``
    # and counted (the Dask path: ``training.distributed._known_outcomes``).
    required: list[str] = []
    if "activity" in out.columns:
        required += ["activity", "propensity"]
    for name in required:
        if name in frame.columns:
            missing = _rows(frame[name].isna())
            _report(problems, missing, field(name), "missing", frame[name], show=False)
    if "interaction_id" in out.columns:
        dup = out["interaction_id"].notna() & out["interaction_id"].duplicated(keep="first")
        shown = field("interaction_id")
        _report(problems, _rows(dup), shown, "duplicate id", frame["interaction_id"])
    if problems:
        raise (ColumnsMissing if missing_columns else DataError)(problems, source)
    if "language" in out.columns:  # one spelling per tag, as the API loads it
        out["language"] = out["language"].map(
            lambda v: canonical_language(v) if isinstance(v, str) else v
        )
    return out


def check_pool_propensity(frame: pd.DataFrame, source: str = "") -> pd.DataFrame:
    """The log with ``pool_propensity`` (a `vea export`'s: the probability of the routed
    pool) as numbers, checked as ``propensity`` is: a finite number in (0, 1], and there
    on every row with a routed pool (``routed_pool_id``, else ``pool_id``). It is no
    canonical column, so ``validate_log`` passes it through as text: an empty value was
    taken as 1 (a pool routed without exploring) and 0 or 5 stopped `vea evaluate
    --routing` naming no row. A log without the column is returned as it is (routing
    that never explored: every pool with probability 1)."""
    name = "pool_propensity"
    if name not in frame.columns:
        return frame
    problems: list[str] = []
    values = frame[name]
    x = _floats(values)
    ok = _check_numbers(problems, name, values, x)
    with np.errstate(invalid="ignore"):  # the words of validate_log's propensity
        _report(problems, _rows(ok & (x <= 0.0)), name, "must be > 0", values)
        _report(problems, _rows(ok & (x > 1.0)), name, "must be <= 1", values)
    pools = [c for c in ("routed_pool_id", "pool_id") if c in frame.columns]
    if pools:
        routed = frame[pools].notna().any(axis=1).to_numpy()
        missing = _rows(routed & values.isna().to_numpy())
        _report(
            problems, missing, name, "missing (the routed pool's probability)", values, show=False
        )
    if problems:
        raise DataError(problems, source)
    return frame.assign(**{name: x})


def say_note(message: str) -> None:
    """A ``note:`` line on stderr, as the CLI's other notes."""
    import click

    click.echo(f"note: {message}", err=True)


def load_log(
    path: str | Path,
    spec: Spec | None = None,
    *,
    require_outcome: bool = True,
    numeric_features: Sequence[str] = (),
    note: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Read, map (when a spec is given) and validate a log. Raises DataError or SpecError.

    ``numeric_features``: columns a model reads as numbers (its encoder's), so a value
    that is not one is refused instead of scored as missing.

    ``note``: told once (``say_note``: on stderr; None: nothing) when the log has columns
    nothing uses, with the known feature columns it lacks (``unused_columns_note``). A
    log read for a model (``numeric_features`` given) is not: the caller says which of
    the model's columns it lacks."""
    raw = read_table(path, spec.encoding if spec else None)
    try:
        frame = spec.apply(raw, require_outcome=require_outcome) if spec else raw
    except SpecError as exc:
        error = ColumnsMissing if isinstance(exc, SpecColumnsMissing) else DataError
        raise error(str(exc), str(path)) from exc
    if spec is not None and require_outcome and not _has_features(frame, spec):
        # LightGBM would stop with a traceback on a design matrix without columns.
        raise ColumnsMissing(
            "the spec leaves the model no feature: the data has none of the canonical "
            f"context columns ({', '.join(CONTEXT_FEATURES)}) with a value, and the spec "
            "maps none under columns: and lists none under features:",
            str(path),
        )
    features: dict[str, str | None] = dict(spec.feature_kinds()) if spec else {}
    features.update({name: "number" for name in numeric_features if name not in COLUMN_BY_NAME})
    out = validate_log(frame, require_outcome=require_outcome, source=str(path), features=features)
    if note is not None and not numeric_features:
        note_unused_columns(path, raw.columns, out.columns, spec, note)
    return out


def note_unused_columns(
    path: str | Path,
    columns: Iterable[object],
    mapped: Iterable[object],
    spec: Spec | None,
    note: Callable[[str], None],
) -> None:
    """Tell ``note`` once, naming the log, what ``unused_columns_note`` finds (nothing when
    every column is used): ``load_log``'s note, and the Dask engine's on the whole log."""
    message = unused_columns_note(columns, mapped, spec)
    if message:
        note(f"{path}: {message}")


def unused_columns_note(
    columns: Iterable[object], mapped: Iterable[object], spec: Spec | None
) -> str | None:
    """What to tell when a log (its ``columns``; ``mapped``: after the spec) has columns
    nothing uses: a feature under another name (``tenure`` for ``tenure_months``) was
    dropped without a word and the model learned without it. Extra columns are allowed
    (design section 4), so this is a note, naming them and the known feature columns the
    log lacks; None when every column is used."""

    if spec is None:
        used = set(COLUMN_BY_NAME)
    else:
        names = [str(c) for c in columns]
        used = {*spec.sources().values(), *spec.features, *spec.passed_through(names)}
    unused = [str(c) for c in columns if str(c) not in used and str(c) not in VEA_EXPORT_COLUMNS]
    if not unused:
        return None
    present = {str(c) for c in mapped}
    lacking = [name for name in CONTEXT_FEATURES if name not in present]
    several = len(unused) > 1
    if spec is None:
        why = "not canonical: an extra feature needs a spec's features:"
    else:
        them = "them" if several else "it"
        why = f"the spec neither maps {them} under columns: nor lists {them} under features:"
    text = f"nothing uses column{'s' if several else ''} {', '.join(unused)} ({why})"
    if not lacking:
        return f"{text}; the log has every known feature column"
    text += f"; the log lacks the known feature column{'s' if len(lacking) > 1 else ''} "
    text += ", ".join(lacking)
    # The mapping spelled out when there is one candidate each way (tenure for
    # tenure_months), else its form.
    pair = (lacking[0], unused[0]) if len(lacking) == len(unused) == 1 else ("canonical", "yours")
    mapping = f"columns: {{{pair[0]}: {pair[1]}}}"
    fix = "rename it, or map it with a spec" if spec is None else "map it in the spec"
    return f"{text}. A column under another name is not learned from: {fix} ({mapping})"


def _has_features(frame: pd.DataFrame, spec: Spec) -> bool:
    """Whether a mapped log gives a model something to learn from: the spec's own features,
    or a canonical context column that is not all empty (what ``training.fit`` encodes)."""
    if spec.features:
        return True
    return any(name in frame and frame[name].notna().any() for name in CONTEXT_FEATURES)


def action_codes(frame: pd.DataFrame) -> np.ndarray:
    """Logged actions as indices into ACTIONS."""
    return pd.Categorical(frame["activity"], categories=list(ACTIONS)).codes.astype(np.int64)


def attempted(frame: pd.DataFrame) -> np.ndarray:
    return (frame["activity"] != NONE).to_numpy(dtype=bool)


def contact_policy_allowed(frame: pd.DataFrame) -> np.ndarray | None:
    """(rows, actions in ``ACTIONS`` order): what the contact policy let a policy choose
    at each logged contact, from a `vea export` log's ``attempt_allowed`` and
    ``blocked_activities`` (`none` always; nothing else where no attempt was allowed);
    None for a log without them, and a row where they are empty (decided before they
    were logged) allows everything."""
    if "attempt_allowed" not in frame or "blocked_activities" not in frame:
        return None
    allowed = np.ones((len(frame), len(ACTIONS)), dtype=bool)
    no_attempt = pd.to_numeric(frame["attempt_allowed"], errors="coerce").to_numpy() == 0.0
    allowed[no_attempt] = False
    for row, blocked in enumerate(frame["blocked_activities"].tolist()):
        if isinstance(blocked, str) and blocked:
            for name in blocked.split(","):
                if name in ACTION_INDEX:
                    allowed[row, ACTION_INDEX[name]] = False
    allowed[:, ACTION_INDEX[NONE]] = True  # resolving plainly is never refused
    return allowed


def write_table(frame: pd.DataFrame, path: str | Path, *, byte_order_mark: bool = False) -> Path:
    """``models.tables.write_table``, with a bad extension or a file that cannot be
    written (a full disk, no permission) reported as a DataError: one line, exit 1."""
    try:
        return tables.write_table(frame, path, byte_order_mark=byte_order_mark)
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    except OSError as exc:
        raise DataError(f"cannot write {path}: {tables.os_reason(exc, path)}") from None
