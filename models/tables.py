"""Writing a log or a scored table to disk: one atomic CSV/Parquet writer for every caller,
for a frame held whole (``write_table``) or for one too large to hold, chunk by chunk
(``write_chunks``, with the ``TableShape`` of all its rows)."""

from __future__ import annotations

import errno
import math
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FORMATS = (".csv", ".parquet")


def table_format(path: str | Path) -> str:
    """The format of ``path`` by its extension, ".csv" or ".parquet".

    Raises ValueError for any other extension; callers turn it into their own error.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unknown output format {suffix!r}; use .csv or .parquet")
    return suffix


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write into, renamed to ``path`` when the block
    ends, removed when it raises: readers never see half a file, and a failed write
    leaves nothing behind (an OSError for a full disk or a folder that is a file).

    Its own name (two writers of one path do not write into each other's), created
    owner-only before a byte is written: a log or a scored table holds customer ids, as
    a backup does, and the writers keep the mode of the file they truncate.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        # The folder is a file: mkdir says "File exists", which reads as if the output
        # file were there already.
        raise NotADirectoryError(
            errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path.parent)
        ) from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_table(frame: pd.DataFrame, path: str | Path, *, byte_order_mark: bool = False) -> Path:
    """CSV or Parquet by extension, atomically (``atomic_file``, owner-only).

    ``byte_order_mark``: a CSV starts with UTF-8's, for a file people open in Excel, which
    reads a CSV without one in the system's code page (CP932 in Japan: Japanese text
    turns to mojibake); pandas and vea skip it when reading.

    Raises ValueError for any other extension; callers turn it into their own error.
    OSError when the file cannot be written (a full disk, no permission, a folder that is
    a file); nothing is left behind then either.
    """
    suffix = table_format(path)
    with atomic_file(path) as tmp:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False, encoding="utf-8-sig" if byte_order_mark else "utf-8")
        else:
            frame.to_parquet(tmp, index=False)
    return Path(path)


# ------------------------------------------------------------------ chunk by chunk
# A time's remainders that show its precision: not midnight, a fraction of a second,
# of a millisecond, of a microsecond (nanoseconds since the epoch).
_PRECISIONS_NS = (86_400 * 10**9, 10**9, 10**6, 10**3)


class TableShape:
    """What the columns of a table hold, gathered chunk by chunk (``add``) without keeping
    the rows: the dtype pandas gives each column of the whole table (``dtypes``), and
    what writing the chunks one by one needs to write what one ``write_table`` of the
    whole table would (``write_chunks``: Parquet's schema, the precision CSV gives times).

    pandas infers a column's dtype from the kinds of values in it: integers with a
    missing value are float64, strings with a number object, strings alone ``str``, only
    missing values object. A chunk can hold other kinds than the whole column (all of
    them missing, say); a few values of each kind met (the smallest and largest integer,
    a number and NaN, a time of each precision) lead pandas and pyarrow to the same
    answer as all the values. Exactly so for a chunk's object column (values as given);
    a float64 one no longer says whether its numbers were integers (pandas' answer
    differs only for integers past int64 beside negative ones; pyarrow's for an object
    column of integers), so the export builds its features' columns as given.
    ``absent``: the value a column holds in the rows of a chunk that lacks it (the
    export's extra features: NaN).
    """

    def __init__(self, absent: Any = math.nan) -> None:
        self.absent = absent
        self.rows = 0
        self.columns: list[str] = []
        self._samples: dict[str, list] = {}
        self._dtypes: dict[str, set] = {}
        self._rows: dict[str, int] = {}
        self._first: pd.Series | None = None  # the first chunk's dtypes (no rows at all)

    def add(self, frame: pd.DataFrame) -> None:
        """Take in a chunk's rows (only a few of its values are kept)."""
        if self._first is None:
            self._first = frame.dtypes
        self.rows += len(frame)
        for name in frame.columns:
            if name not in self._samples:
                self.columns.append(name)
                self._samples[name], self._dtypes[name], self._rows[name] = [], set(), 0
            if frame.empty:
                continue
            column = frame[name]
            self._dtypes[name].add(column.dtype)
            self._rows[name] += len(column)
            self._samples[name] = _samples(self._samples[name] + _candidates(column))

    def samples(self, name: str) -> list:
        """The values kept of column ``name``, with ``absent`` if a chunk lacked it."""
        missing = self._rows.get(name, 0) < self.rows
        return self._samples.get(name, []) + ([self.absent] if missing else [])

    def dtypes(self) -> dict[str, Any]:
        """Each column's dtype in a frame of all the rows added, built at once."""
        if self.rows == 0:
            return {} if self._first is None else dict(self._first)
        out: dict[str, Any] = {}
        for name in self.columns:
            seen = self._dtypes[name]
            alike = len(seen) == 1 and not pd.api.types.is_object_dtype(next(iter(seen)))
            if alike and self._rows[name] == self.rows:
                out[name] = next(iter(seen))  # the same everywhere: nothing to infer
            else:
                out[name] = pd.DataFrame({name: self.samples(name)})[name].dtype
        return out

    def sample_frame(self, dtypes: Mapping[str, Any]) -> pd.DataFrame:
        """A few rows with ``dtypes`` holding the kept values of each column: pyarrow
        infers from them the schema it would infer from all the rows."""
        values = {name: self.samples(name) for name in dtypes}
        longest = max((len(v) for v in values.values()), default=0)
        # Padded with a column's own first value: a repeat adds no kind of value.
        return pd.DataFrame(
            {
                name: pd.Series(v + v[:1] * (longest - len(v)), dtype=dtypes[name])
                for name, v in values.items()
            },
            columns=list(dtypes),
        )


def _candidates(column: pd.Series) -> list:
    """A chunk's values that can show what kinds its column holds, picked at once where
    the dtype allows (an object column is looked at value by value by ``_samples``)."""
    dtype = column.dtype
    if pd.api.types.is_object_dtype(dtype):
        return column.tolist()
    present = column.dropna()
    picked = present.iloc[:1].tolist()
    if pd.api.types.is_bool_dtype(dtype):
        picked = present.unique().tolist()
    elif pd.api.types.is_integer_dtype(dtype) and len(present):
        picked = [present.min().item(), present.max().item()]
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        wall = present.dt.tz_localize(None) if getattr(dtype, "tz", None) else present
        nanoseconds = wall.to_numpy().astype("datetime64[ns]").view("int64")
        for precision in _PRECISIONS_NS:
            picked += present.iloc[np.flatnonzero(nanoseconds % precision)[:1]].tolist()
    if len(present) < len(column):
        # The dtype's own missing value: NaN, or NaT for times (None would read as
        # "only missing values", an object column).
        missing = pd.NaT if pd.api.types.is_datetime64_any_dtype(dtype) else math.nan
        picked.append(getattr(dtype, "na_value", missing))
    return picked


def _samples(values: list) -> list:
    """Of a list of values, a few of each kind (type) that say what pandas and pyarrow
    infer from all of them: an integer's range (int64, uint64 or neither), a number
    beside NaN, a time of each precision; one of any other kind."""
    kept: list = []
    for kind in sorted({type(v) for v in values}, key=lambda t: t.__qualname__):
        of_kind = [v for v in values if type(v) is kind]
        if issubclass(kind, bool | np.bool_):
            kept += of_kind[:1]
        elif issubclass(kind, int | np.integer):
            kept += [min(of_kind), max(of_kind)]
        elif issubclass(kind, float | np.floating):
            kept += [v for v in of_kind if not math.isnan(v)][:1]
            kept += [v for v in of_kind if math.isnan(v)][:1]
        elif issubclass(kind, pd.Timestamp):
            kept += of_kind[:1]
            for precision in _PRECISIONS_NS:
                kept += [t for t in of_kind if t.tz_localize(None).value % precision][:1]
        else:
            kept += of_kind[:1]
    return kept


def write_chunks(
    chunks: Iterable[pd.DataFrame],
    path: str | Path,
    shape: TableShape,
    *,
    byte_order_mark: bool = False,
) -> Path:
    """``chunks`` written one after another as one table, as ``write_table`` writes their
    concatenation, atomically: CSV's header once and each time column with the precision
    the whole column needs; Parquet with one schema for every chunk (a column of strings
    all empty in one chunk is still strings). Every chunk has the same columns and
    dtypes, at least one is given (an empty one for a table without rows), and ``shape``
    has seen all their rows.

    Raises ValueError for an unknown extension (before a chunk is asked for) or chunks
    that differ; OSError as ``write_table``.
    """
    suffix = table_format(path)
    with atomic_file(path) as tmp:
        if suffix == ".csv":
            _write_csv(chunks, tmp, shape, byte_order_mark)
        else:
            _write_parquet(chunks, tmp, shape)
    return Path(path)


def _alike(chunks: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """``chunks``, checked to have the first one's columns and dtypes."""
    first = None
    for n, frame in enumerate(chunks, start=1):
        if first is None:
            first = frame.dtypes
        elif not frame.dtypes.equals(first):
            raise ValueError(f"chunk {n} of the table has other columns or dtypes than chunk 1")
        yield frame
    if first is None:
        raise ValueError("no chunk to write (an empty table is an empty frame)")


def _write_csv(
    chunks: Iterable[pd.DataFrame], tmp: Path, shape: TableShape, byte_order_mark: bool
) -> None:
    # newline="": the csv module ends the lines itself, as pandas does with a path.
    with open(tmp, "w", encoding="utf-8-sig" if byte_order_mark else "utf-8", newline="") as out:
        for n, frame in enumerate(_alike(chunks)):
            if n and frame.empty:
                continue
            _times_as_text(frame, shape).to_csv(out, index=False, header=n == 0)


def _times_as_text(frame: pd.DataFrame, shape: TableShape) -> pd.DataFrame:
    """``frame`` with each time column as the text pandas writes for it in a CSV of all
    the rows: pandas writes a column's times with the finest precision any of them needs
    (".000" on every time once one has milliseconds), so a chunk alone could write them
    shorter. They are formatted beside the shape's times of each precision."""
    times = [n for n, d in frame.dtypes.items() if pd.api.types.is_datetime64_any_dtype(d)]
    if not times or frame.empty:
        return frame
    frame = frame.copy(deep=False)  # the caller's frame unchanged, its columns shared
    for name in times:
        column = frame[name]
        samples = [t for t in shape.samples(name) if not pd.isna(t)]
        both = pd.concat([pd.Series(samples, dtype=column.dtype), column], ignore_index=True)
        # A time's text holds no comma, quote or line break: one per line.
        lines = both.to_frame().to_csv(index=False, header=False).splitlines()[len(samples) :]
        text = pd.Series(lines, index=frame.index, dtype=object)
        text[column.isna().to_numpy()] = None  # written empty, as a missing time is
        frame[name] = text
    return frame


def _write_parquet(chunks: Iterable[pd.DataFrame], tmp: Path, shape: TableShape) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for frame in _alike(chunks):
            if writer is None:
                # The schema pandas' to_parquet gives the whole table: from the dtypes,
                # and for an object column from its values (all missing: null).
                schema = pa.Schema.from_pandas(
                    shape.sample_frame(frame.dtypes.to_dict()), preserve_index=False
                )
                writer = pq.ParquetWriter(tmp, schema)
            if not frame.empty:
                writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
    finally:
        if writer is not None:
            writer.close()


def os_reason(exc: OSError, out: str | Path) -> str:
    """Why ``out`` could not be written, in the OS's words, naming the path that failed
    when it is not the output file itself (a folder on the way that is a file)."""
    reason = exc.strerror or str(exc)
    failed = exc.filename
    name = Path(out).name
    if failed and not _is_output(Path(failed).name, name):
        reason = f"{reason}: {failed}"
    return reason


def _is_output(failed: str, name: str) -> bool:
    """Whether ``failed`` is the output file ``name`` or its temporary file."""
    return failed == name or (failed.startswith(f".{name}.") and failed.endswith(".tmp"))
