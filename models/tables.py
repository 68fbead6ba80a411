"""Writing a log or a scored table to disk: one atomic CSV/Parquet writer for every caller."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

import pandas as pd

FORMATS = (".csv", ".parquet")


def write_table(frame: pd.DataFrame, path: str | Path, *, byte_order_mark: bool = False) -> Path:
    """CSV or Parquet by extension, atomically: readers never see half a file.

    ``byte_order_mark``: a CSV starts with UTF-8's, for a file people open in Excel, which
    reads a CSV without one in the system's code page (CP932 in Japan: Japanese text
    turns to mojibake); pandas and vea skip it when reading.

    Raises ValueError for any other extension; callers turn it into their own error.
    OSError when the file cannot be written (a full disk, no permission, a folder that is
    a file); nothing is left behind then either.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unknown output format {suffix!r}; use .csv or .parquet")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        # The folder is a file: mkdir says "File exists", which reads as if the output
        # file were there already.
        raise NotADirectoryError(
            errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path.parent)
        ) from None
    # Its own temporary name (two writers of one path do not write into each other's),
    # made owner-only first: a log or a scored table holds customer ids, as a backup
    # does, and the writers below keep the mode of the file they truncate.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False, encoding="utf-8-sig" if byte_order_mark else "utf-8")
        else:
            frame.to_parquet(tmp, index=False)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


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
