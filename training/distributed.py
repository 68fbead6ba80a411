"""Training on a Dask cluster: the same bundle as ``training.fit``, from data that need not
fit on one machine.

The log is read as partitioned Parquet with ``dask.dataframe`` and never collected whole:

1. One pass over the partitions validates every row with ``training.loading.validate_log``
   and gathers small statistics (row counts, category values, action counts, inverse
   propensity sums). Problems are reported with row numbers in the whole data set, in
   Dask's partition order (a directory's parts as the local loader reads them, in the same
   order: ``training.loading.parquet_files``; offsets come from the same pass), before
   anything is trained. A column nothing uses is noted as ``load_log`` notes it.
   Duplicate ``interaction_id`` values are found within a partition by the validation,
   across partitions from each partition's 64-bit hashes of its ids (8 bytes per row
   reach the client; the same log exported twice is refused as it is locally, with an
   example id).
2. The feature encoder's vocabulary comes from those per-partition category values.
3. A second pass encodes every partition to the float matrix ``FeatureEncoder`` builds
   locally and keeps it in the cluster's memory (it spills to disk when it must).
4. LightGBM trains on the cluster through its own Dask interface (``lightgbm.dask``, data
   parallel), with ``models.boosting.default_params`` for the full data size.

Early stopping: ``lightgbm.dask`` accepts an ``eval_set`` but does not support early
stopping (each worker would stop on its own validation part and the others hang; LightGBM
issues #3712, #6351). So the number of rounds is found by the local early-stopping fit on a
bounded random sample collected to the client (``sample_rows``; when the log is smaller,
the sample is the whole log and the rounds are exactly the local ones), and the cluster
then trains for that many rounds. More rows support more rounds, so on a log larger than
the sample this is a little conservative rather than overfitted.

Also on the client, from bounded samples: isotonic calibration of openness (on held-out
rows the cluster never trained on), learner selection for ``learner="auto"`` and the
reason table. Learners: ``s``, ``s_ipw`` (sample weights) and ``t`` (one model per action)
train on the cluster; ``dr`` is local-only and falls back to ``s`` with a note.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from models.activities import ACTIONS, NONE
from models.boosting import default_params, fit_booster
from models.bundle import ModelBundle
from models.economics import Economics
from models.features import FeatureEncoder
from models.openness import OpennessModel
from models.ranker import (
    ACTION_FEATURE,
    LEARNERS,
    MIN_ACTION_SUPPORT,
    PROPENSITY_FLOOR,
    ActivityRanker,
    constant_booster,
    too_few_rows,
)
from models.schema import CATEGORICAL_FEATURES, LABEL, NUMERIC_FEATURES, Reward
from training.fit import (
    UNKNOWN_REWARD,
    drift_reference,
    reason_table,
    reward_record,
    select_learner,
)
from training.loading import (
    DataError,
    action_codes,
    file_fingerprint,
    note_unused_columns,
    parquet_files,
    parquet_parts,
    validate_log,
)
from training.overlap import hash_sample, id_hashes
from training.spec import Spec, SpecError

K = len(ACTIONS)
DASK_LEARNERS = ("s", "s_ipw", "t")
FALLBACK_LEARNER = "s"
# Rows collected to the client to find the number of boosting rounds and to choose the
# learner: enough to estimate both well, small enough for one machine.
SAMPLE_ROWS = 200_000
# Held-out rows collected for the isotonic calibration of openness.
CALIBRATION_ROWS = 400_000
# Same split fractions as the local models (OpennessModel, ActivityRanker).
CALIBRATION_FRACTION = 0.25
VALIDATION_FRACTION = 0.2
MAX_ROUNDS = 2000
# Columns of the encoded design frame besides the features (prefixed so they cannot
# collide with a spec's extra feature names).
ACTION_COL = "_vea_action"
LABEL_COL = "_vea_label"
PROPENSITY_COL = "_vea_propensity"
SPLIT_COL = "_vea_split"  # uniform in [0, 1): < CALIBRATION_FRACTION is held out
SAMPLE_COL = "_vea_sample"  # uniform in [0, 1): < fraction selects the client sample
# Network settings LightGBM writes into a distributed model's parameters: a bundle must
# not carry the training cluster's addresses.
NETWORK_PARAMS = ("machines", "local_listen_port", "num_machines", "time_out")

Note = Callable[[str], None]


class ClusterError(ValueError):
    """A Dask scheduler that cannot be reached (a ValueError, so the CLI reports it as a
    one-line user error, like bad data)."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


# ---------------------------------------------------------------------------- the cluster
@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int = 2) -> Iterator[Any]:
    """A client for ``scheduler``, or for a LocalCluster of ``workers`` one-thread processes.

    Processes, not threads: LightGBM's network layer is global to a process, so two
    LightGBM workers must never share one.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot connect to the Dask scheduler at {scheduler}: {exc}"
            ) from exc
        cluster = None
    else:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
        client.run(_silence_stdout)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _silence_stdout() -> None:
    """In our own LocalCluster's workers, stdout carries only LightGBM's C++ network chatter
    ("Connecting to rank 1 failed, waiting..."), printed from worker threads where its
    per-thread log level never got verbosity=-1; it would land in `vea train`'s stdout,
    which is for the new version. Dask logs on stderr and LightGBM errors raise, so
    nothing of use is lost."""
    import os

    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


# --------------------------------------------------------------------------- reading
def read_parquet_log(path: str | Path) -> Any:
    """A lazy Dask DataFrame over a Parquet file or a directory of Parquet files (local,
    shared or any fsspec URL such as s3://). A directory is read by its parts, as the local
    loader reads it (``training.loading.parquet_parts``): the same files, the same rows."""
    import dask.dataframe as dd

    text = str(path)
    local = Path(text)
    if "://" not in text:
        if not local.exists():
            raise DataError(f"file not found: {text}")
        if local.is_file() and local.suffix.lower() != ".parquet":
            raise DataError(
                f"{text}: the dask engine reads Parquet (a file or a directory of files); "
                "convert CSV first or use --engine local"
            )
    try:
        files = parquet_parts(text)
        if files is None:
            return dd.read_parquet(text)
        import fsspec

        fs, root = fsspec.core.url_to_fs(text)
        root = root.rstrip("/")
        # Hive partitions from below the directory only, as the local loader reads them.
        return dd.read_parquet(
            [f"{root}/{name}" for name in files],
            filesystem=fs,
            dataset={"partition_base_dir": root},
        )
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{text}: cannot read as Parquet: {exc}") from exc


def data_fingerprint(path: str | Path) -> str:
    """A single local file: the SHA-256 of its bytes (as local training). A directory or a
    URL: the SHA-256 of the listing (names, sizes, modification stamps) of the files read,
    a directory's Parquet parts (``training.loading.parquet_files``; a lock file or a cache
    beside them changes nothing), because hashing every byte on the client would read the
    whole data set on one machine."""
    text = str(path)
    if "://" not in text and Path(text).is_file():
        return file_fingerprint(text)
    import fsspec

    fs, root = fsspec.core.url_to_fs(text)
    digest = hashlib.sha256()
    # In name order, as it always was: a directory's fingerprint stays what it was.
    parts = sorted(parquet_files(text)) if fs.isdir(root) else None
    names = [f"{root.rstrip('/')}/{part}" for part in parts] if parts is not None else [root]
    for name in names:
        info = fs.info(name)
        stamp = info.get("mtime") or info.get("LastModified") or info.get("ETag") or ""
        rel = name[len(root) :].lstrip("/")
        digest.update(f"{rel}\0{info.get('size')}\0{stamp}\n".encode())
    return digest.hexdigest()


def _canonical(part: pd.DataFrame, spec: Spec | None) -> pd.DataFrame:
    return spec.apply(part) if spec else part


# ------------------------------------------------------------ pass 1: validate and count
@dataclass
class LogSummary:
    """What the whole log holds, combined from per-partition summaries."""

    rows: int = 0
    lengths: list[int] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # after the spec, as validated
    left_out: int = 0  # rows whose outcome is not known (an empty ve_success)
    values: dict[str, set[str]] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)
    has_activity: bool = False
    action_counts: np.ndarray = field(default_factory=lambda: np.zeros(K, dtype=np.int64))
    action_positives: np.ndarray = field(default_factory=lambda: np.zeros(K, dtype=np.int64))
    inverse_propensity: np.ndarray = field(default_factory=lambda: np.zeros(K))
    positives: int = 0
    training_ids: dict[str, Any] | None = None  # training.overlap's sample

    @property
    def attempted(self) -> int:
        return int(self.action_counts[1:].sum())


def _partition_summary(
    part: pd.DataFrame, spec: Spec | None, categorical: Sequence[str], numeric: Sequence[str]
) -> dict[str, Any]:
    """Validate one partition (rows numbered within it) and count what training needs."""
    try:
        frame = validate_log(_canonical(part, spec))
    except (DataError, SpecError) as exc:
        problems = exc.problems if isinstance(exc, DataError) else [str(exc)]
        return {"rows": len(part), "problems": problems}
    known = _known_outcomes(frame)
    out: dict[str, Any] = {
        "rows": len(frame),
        "left_out": len(frame) - len(known),
        "problems": [],
        "columns": [str(name) for name in frame.columns],
    }
    frame = known
    out["values"] = {
        name: set(frame[name].dropna().astype(str).unique())
        for name in categorical
        if name in frame
    }
    out["present"] = {name: int(frame[name].notna().sum()) for name in [*categorical, *numeric]}
    out["id_hashes"] = _id_hashes(frame)
    y = frame[LABEL].to_numpy(dtype=np.float64)
    out["positives"] = int(y.sum())
    out["has_activity"] = "activity" in frame
    if "activity" in frame:
        codes = action_codes(frame)
        inverse = 1.0 / np.clip(frame["propensity"].to_numpy(dtype=np.float64), PROPENSITY_FLOOR, 1)
        out["action_counts"] = np.bincount(codes, minlength=K)
        out["action_positives"] = np.bincount(codes, weights=y, minlength=K).astype(np.int64)
        out["inverse_propensity"] = np.bincount(codes, weights=inverse, minlength=K)
    return out


_ROW = re.compile(r"^row (\d+)")


def _renumber(problem: str, offset: int) -> str:
    """'row 3, field x: ...' in a partition -> the row's number in the whole data set."""
    return _ROW.sub(lambda m: f"row {int(m.group(1)) + offset}", problem)


def summarize_log(
    client: Any, ddf: Any, spec: Spec | None, extra: Sequence[str], source: str
) -> LogSummary:
    """Validate every partition on the cluster; raise one DataError naming rows in the
    whole data set, else return the combined statistics."""
    import dask

    categorical, numeric = _candidate_columns(ddf, spec, extra)
    parts = ddf.to_delayed()
    tasks = [dask.delayed(_partition_summary)(p, spec, categorical, numeric) for p in parts]
    results = client.compute(tasks, sync=True)
    summary = LogSummary()
    problems: list[str] = []
    offset = 0
    for result in results:
        for problem in result["problems"]:
            text = _renumber(problem, offset)
            if text not in problems:  # e.g. a missing column, reported by every partition
                problems.append(text)
        summary.lengths.append(result["rows"])
        offset += result["rows"]
        if result["problems"]:
            continue
        summary.left_out += result["left_out"]
        summary.columns.extend(c for c in result["columns"] if c not in summary.columns)
        for name, values in result["values"].items():
            summary.values.setdefault(name, set()).update(values)
        for name, count in result["present"].items():
            summary.present[name] = summary.present.get(name, 0) + count
        summary.positives += result["positives"]
        summary.has_activity = summary.has_activity or result["has_activity"]
        if result["has_activity"]:
            summary.action_counts += result["action_counts"]
            summary.action_positives += result["action_positives"]
            summary.inverse_propensity += result["inverse_propensity"]
    if problems:
        raise DataError(problems, source)
    hashes = [r["id_hashes"] for r in results]
    _refuse_repeated_ids(client, ddf, spec, hashes, source)
    if any(h.size for h in hashes):
        summary.training_ids = hash_sample(np.concatenate(hashes))
    summary.rows = offset - summary.left_out
    if offset == 0:
        raise DataError(f"{source}: no data rows")
    if summary.rows == 0:
        raise DataError(
            f"{source}: no rows with a known {LABEL} ({summary.left_out} left out: "
            f"{UNKNOWN_REWARD})"
        )
    return summary


def _id_hashes(frame: pd.DataFrame) -> np.ndarray:
    """The ids' 64-bit hashes: repeats across partitions are found from them, and the
    bundle's sample of its training ids (``training.overlap``) is drawn from them."""
    if "interaction_id" not in frame:
        return np.empty(0, dtype=np.uint64)
    return id_hashes(frame["interaction_id"].dropna())


def _refuse_repeated_ids(
    client: Any, ddf: Any, spec: Spec | None, hashes: list[np.ndarray], source: str
) -> None:
    """An ``interaction_id`` in more than one partition (validation finds repeats within
    one) is refused as local training refuses it: typically overlapping exports."""
    values, counts = np.unique(np.concatenate(hashes), return_counts=True)
    repeated = values[counts > 1]
    if repeated.size == 0:
        return
    import dask

    def examples(part: pd.DataFrame) -> list[str]:
        frame = _canonical(part, spec)
        ids = frame["interaction_id"].dropna()
        hit = np.isin(id_hashes(ids), repeated)
        return ids[hit].astype(str).head(3).tolist()

    found = client.compute([dask.delayed(examples)(p) for p in ddf.to_delayed()], sync=True)
    names = sorted({i for part in found for i in part})[:3]
    raise DataError(
        f"{repeated.size} interaction_id value(s) appear in more than one row (e.g. "
        f"{', '.join(names)}): the same contacts twice, such as overlapping exports; keep "
        "one row per interaction",
        source,
    )


def _known_outcomes(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows whose label is known: an empty one (an outcome without VES answers, as
    ``vea export`` writes it) is left out, as ``training.fit.apply_reward`` does."""
    known = frame[LABEL].notna().to_numpy()
    return frame if known.all() else frame.loc[known].reset_index(drop=True)


def _candidate_columns(
    ddf: Any, spec: Spec | None, extra: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Feature columns the log may have, typed as local training types them: the canonical
    ones by the schema, a spec's extra ones by their dtype (Parquet gives it per column)."""
    # As Spec.apply: the spec's own columns and the canonical ones it lets through.
    names = (
        (set(spec.columns) | set(spec.passed_through(ddf.columns))) if spec else set(ddf.columns)
    )
    categorical = [c for c in CATEGORICAL_FEATURES if c in names]
    numeric = [c for c in NUMERIC_FEATURES if c in names]
    for name in extra:
        if name not in ddf.columns:
            continue  # spec.apply reports it per partition, with the spec's wording
        dtype = ddf[name].dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            categorical.append(name)
        else:
            numeric.append(name)
    return categorical, numeric


def encoder_from_summary(
    summary: LogSummary, ddf: Any, spec: Spec | None, extra: Sequence[str]
) -> FeatureEncoder:
    """The encoder ``training.fit.feature_encoder_for`` would build on the whole log:
    canonical columns that are not all empty, the spec's extra features, sorted vocabularies."""
    categorical, numeric = _candidate_columns(ddf, spec, extra)
    keep = set(extra)
    categorical = [c for c in categorical if c in keep or summary.present.get(c, 0) > 0]
    numeric = [c for c in numeric if c in keep or summary.present.get(c, 0) > 0]
    vocabulary = {name: sorted(summary.values.get(name, set())) for name in categorical}
    return FeatureEncoder.from_dict(
        {"categorical": categorical, "numeric": numeric, "vocabulary": vocabulary}
    )


# ------------------------------------------------------------------ pass 2: encode
def _design_partition(
    part: pd.DataFrame,
    spec: Spec | None,
    encoder: FeatureEncoder,
    seed: int,
    partition_info: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """The encoded feature matrix of one partition plus label, action, propensity and two
    uniform draws (held-out split, client sample), seeded by the partition's number so a
    rerun on the same files draws the same rows."""
    frame = _known_outcomes(validate_log(_canonical(part, spec)))
    out = pd.DataFrame(encoder.transform(frame), columns=encoder.feature_names)
    out[LABEL_COL] = frame[LABEL].to_numpy(dtype=np.float64)
    if "activity" in frame:
        out[ACTION_COL] = action_codes(frame).astype(np.float64)
        out[PROPENSITY_COL] = frame["propensity"].to_numpy(dtype=np.float64)
    else:
        out[ACTION_COL] = np.nan
        out[PROPENSITY_COL] = np.nan
    number = (partition_info or {}).get("number", 0)
    rng = np.random.default_rng([seed, 9001, number])
    out[SPLIT_COL] = rng.random(len(out))
    out[SAMPLE_COL] = rng.random(len(out))
    return out


def encode_log(ddf: Any, spec: Spec | None, encoder: FeatureEncoder, seed: int) -> Any:
    """Lazy design frame: one float64 column per feature and the bookkeeping columns."""
    columns = [*encoder.feature_names, LABEL_COL, ACTION_COL, PROPENSITY_COL, SPLIT_COL, SAMPLE_COL]
    meta = pd.DataFrame({name: pd.Series(dtype=np.float64) for name in columns})
    return ddf.map_partitions(_design_partition, spec, encoder, seed, meta=meta)


# ------------------------------------------------------------------ LightGBM on Dask
def _drop_empty(client: Any, ddf: Any) -> Any:
    """Filtering leaves empty partitions; a LightGBM worker whose parts are all empty
    cannot build its dataset, so train only on partitions with rows."""
    lengths = client.compute(ddf.map_partitions(len), sync=True)
    keep = [i for i, n in enumerate(lengths) if n > 0]
    if not keep:
        raise DataError("no rows left to train on")
    return ddf if len(keep) == ddf.npartitions else ddf.partitions[keep]


def local_booster(model: Any) -> Any:
    """A plain Booster from a fitted Dask estimator, without the cluster's network settings."""
    import lightgbm as lgb

    text = model.to_local().booster_.model_to_string()
    pattern = re.compile(r"^\[(" + "|".join(NETWORK_PARAMS) + r"): .*\]$\n?", re.MULTILINE)
    return lgb.Booster(model_str=pattern.sub("", text))


def fit_dask_classifier(
    client: Any,
    x: Any,
    y: Any,
    params: dict[str, Any],
    rounds: int,
    *,
    weight: Any = None,
    categorical: Sequence[int] = (),
) -> Any:
    """Train a binary LightGBM on the cluster for a fixed number of rounds; returns a Booster."""
    import lightgbm as lgb

    # The Dask interface sets threads per worker itself and warns about any it is given.
    settings = {k: v for k, v in params.items() if k not in ("num_threads", "verbose", "n_jobs")}
    model = lgb.DaskLGBMClassifier(
        client=client, n_estimators=max(1, int(rounds)), verbosity=-1, **settings
    )
    # Its client side prints set-up chatter ("Finding random open ports") on stdout.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.filterwarnings("ignore", message="Parameter .* will be ignored")
        model.fit(x, y, sample_weight=weight, categorical_feature=list(categorical))
    return local_booster(model)


# ------------------------------------------------------------------------ training
def _rows_of(design: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    return design[list(names)].to_numpy(dtype=np.float64)


def train_bundle_dask(
    path: str | Path,
    spec: Spec | None = None,
    *,
    economics: Economics | None = None,
    learner: str = "auto",
    seed: int = 0,
    scheduler: str | None = None,
    workers: int = 2,
    client: Any = None,
    sample_rows: int = SAMPLE_ROWS,
    calibration_rows: int = CALIBRATION_ROWS,
    num_threads: int = 0,
    progress: bool = True,
    note: Note = _stderr,
) -> ModelBundle:
    """Fit openness and the activity ranker on a Dask cluster; returns a normal bundle.

    ``client``: an existing ``distributed.Client`` (then ``scheduler`` and ``workers`` are
    not used). Else ``scheduler`` is the address of a running cluster, or a LocalCluster
    of ``workers`` processes is started and stopped. ``num_threads``: LightGBM threads for
    the bounded client-side fits (the cluster's workers use their own thread counts).
    """
    if learner != "auto" and learner not in LEARNERS:
        raise ValueError(f"unknown learner {learner!r}; use auto or one of {LEARNERS}")
    if client is None:
        with dask_client(scheduler, workers) as own:
            return train_bundle_dask(
                path,
                spec,
                economics=economics,
                learner=learner,
                seed=seed,
                client=own,
                sample_rows=sample_rows,
                calibration_rows=calibration_rows,
                num_threads=num_threads,
                progress=progress,
                note=note,
            )
    return _DaskTraining(
        client, path, spec, economics, learner, seed, sample_rows, calibration_rows, num_threads,
        progress, note,
    ).run()  # fmt: skip


class _DaskTraining:
    """One training run; the steps share the cluster, the design frame and the samples."""

    def __init__(
        self,
        client: Any,
        path: str | Path,
        spec: Spec | None,
        economics: Economics | None,
        learner: str,
        seed: int,
        sample_rows: int,
        calibration_rows: int,
        num_threads: int,
        progress: bool,
        note: Note,
    ) -> None:
        self.client = client
        self.path = str(path)
        self.spec = spec
        self.economics = economics or Economics.from_dict(spec.economics if spec else None)
        self.learner = learner
        self.seed = seed
        self.sample_rows = sample_rows
        self.calibration_rows = calibration_rows
        self.num_threads = num_threads
        self.note = note
        self.say: Note = note if progress else (lambda _message: None)
        self.rounds: dict[str, Any] = {}

    def get(self, collection: Any) -> Any:
        """Compute on this run's cluster (never on whatever client happens to be default)."""
        return self.client.compute(collection, sync=True)

    def run(self) -> ModelBundle:
        extra = self.spec.features if self.spec else []
        raw = read_parquet_log(self.path)
        self.say(f"dask: validating {raw.npartitions} partitions")
        summary = summarize_log(self.client, raw, self.spec, extra, self.path)
        # As load_log: a feature column under another name is not learned from, said once.
        note_unused_columns(
            self.path, raw.columns, summary.columns, self.spec, lambda m: self.note(f"note: {m}")
        )
        self.encoder = encoder_from_summary(summary, raw, self.spec, extra)
        self.names = self.encoder.feature_names
        self.categorical = list(range(len(self.encoder.categorical)))
        self.say(f"dask: encoding {summary.rows} rows")
        # Kept in the cluster's memory: every model below reads it again.
        design = self.client.persist(encode_log(raw, self.spec, self.encoder, self.seed))
        fraction = min(1.0, self.sample_rows / summary.rows)
        sample = self.get(design[design[SAMPLE_COL] < fraction])
        metrics: dict[str, Any] = {"reward": Reward().label}  # as local training records it
        has_activity = summary.has_activity
        if has_activity and not (summary.action_counts >= MIN_ACTION_SUPPORT).any():
            # Refused before any model is fitted, with the whole log's counts.
            raise ValueError(too_few_rows(summary.action_counts))
        use_attempts = has_activity and summary.attempted >= 50

        self.say("dask: openness")
        openness, openness_rows = self.fit_openness(design, sample, summary, use_attempts)
        metrics["openness_rows"] = openness_rows
        ranker = reasons = None
        if has_activity:
            chosen = self.choose_learner(sample, summary, metrics)
            self.say(f"dask: ranker ({chosen})")
            ranker = self.fit_ranker(design, sample, summary, chosen)
            x_sample = _rows_of(sample, self.names)
            reasons = reason_table(ranker, x_sample, self.encoder, self.seed)
            metrics["action_counts"] = {
                a: int(c) for a, c in zip(ACTIONS, summary.action_counts, strict=True)
            }
        manifest = {
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data_fingerprint": data_fingerprint(self.path),
            "training_rows": int(summary.rows),
            "seed": self.seed,
            "metrics": metrics,
            "reward": {
                **reward_record(Reward(), self.spec),
                "rows": int(summary.rows),
                "left_out": summary.left_out,
            },
            "engine": {
                "name": "dask",
                "workers": len(self.client.nthreads()),
                "partitions": int(raw.npartitions),
                "sample_rows": int(len(sample)),
                "boosting_rounds": self.rounds,
                "early_stopping": "rounds found on the client sample",
            },
            # As local bundles: drift is measured against the training histograms (from
            # the client sample) and a later log's overlap with the training rows is told.
            "drift_reference": drift_reference(
                decoded_sample(sample, self.encoder), self.encoder, self.seed
            ),
        }
        if summary.training_ids is not None:
            manifest["training_ids"] = summary.training_ids
        return ModelBundle(
            encoder=self.encoder,
            openness=openness,
            ranker=ranker,
            economics=self.economics,
            spec=self.spec.to_dict() if self.spec else None,
            manifest=manifest,
            reasons=reasons,
        )

    # ---------------------------------------------------------------- openness
    def fit_openness(
        self, design: Any, sample: pd.DataFrame, summary: LogSummary, use_attempts: bool
    ) -> tuple[OpennessModel, int]:
        """As ``OpennessModel.fit``: on value attempts re-weighted to a uniform mix over the
        tried activities (the 1/k factor cancels in the normalisation), 25% held out for the
        rounds and the isotonic calibration."""
        if use_attempts:
            rows = design[design[ACTION_COL] != ACTIONS.index(NONE)]
            sample = sample[sample[ACTION_COL] != ACTIONS.index(NONE)]
            mean_inverse = summary.inverse_propensity[1:].sum() / summary.attempted
            total, positives = summary.attempted, int(summary.action_positives[1:].sum())
        else:
            rows, mean_inverse = design, None
            total, positives = summary.rows, summary.positives
        if positives in (0, total):
            raise ValueError("openness needs both successes and failures in the training data")

        def weight_of(frame):
            if mean_inverse is None:
                return None
            return 1.0 / frame[PROPENSITY_COL].clip(PROPENSITY_FLOOR, 1.0) / mean_inverse

        held = sample[SPLIT_COL] < CALIBRATION_FRACTION
        fit_part, valid_part = sample[~held], sample[held]
        probe = fit_booster(
            default_params("binary", self.seed, len(fit_part), self.num_threads),
            _rows_of(fit_part, self.names),
            fit_part[LABEL_COL].to_numpy(),
            _rows_of(valid_part, self.names),
            valid_part[LABEL_COL].to_numpy(),
            weight_train=_array(weight_of(fit_part)),
            weight_valid=_array(weight_of(valid_part)),
            categorical=self.categorical,
            feature_names=self.names,
            max_rounds=MAX_ROUNDS,
        )
        rounds = probe.num_trees()
        train = _drop_empty(self.client, rows[rows[SPLIT_COL] >= CALIBRATION_FRACTION])
        n_train = int(self.get(train.shape[0]))
        self.rounds["openness"] = {"rounds": rounds, "sample_rows": len(fit_part)}
        booster = fit_dask_classifier(
            self.client,
            train[self.names],
            train[LABEL_COL],
            default_params("binary", self.seed, n_train),
            rounds,
            weight=weight_of(train),
            categorical=self.categorical,
        )
        # Calibrate on held-out rows only: a bounded random part of them, on the client.
        held_rows = rows[rows[SPLIT_COL] < CALIBRATION_FRACTION]
        n_held = max(1, int(total * CALIBRATION_FRACTION))
        keep = min(1.0, self.calibration_rows / n_held)
        calib = self.get(held_rows[held_rows[SAMPLE_COL] < keep])
        model = calibrated_openness(
            booster,
            _rows_of(calib, self.names),
            calib[LABEL_COL].to_numpy(),
            _array(weight_of(calib)),
        )
        self.rounds["openness"]["calibration_rows"] = len(calib)
        return model, int(total)

    # ------------------------------------------------------------------ ranker
    def choose_learner(
        self, sample: pd.DataFrame, summary: LogSummary, metrics: dict[str, Any]
    ) -> str:
        if self.learner != "auto":
            if self.learner in DASK_LEARNERS:
                return self.learner
            self.note(
                f"note: learner {self.learner!r} is local-only; the dask engine trains "
                f"{FALLBACK_LEARNER!r} instead (use --engine local for {self.learner!r})"
            )
            return FALLBACK_LEARNER
        # Selection needs only enough rows to tell learners apart: the client sample.
        self.say(f"dask: choosing the learner on {len(sample)} sampled rows")
        x = _rows_of(sample, self.names)
        y = sample[LABEL_COL].to_numpy()
        actions = sample[ACTION_COL].to_numpy().astype(np.int64)
        propensity = sample[PROPENSITY_COL].to_numpy()
        frame = pd.DataFrame({LABEL: y})
        bar = tqdm(disable=True)
        chosen, selection = select_learner(
            x,
            frame,
            actions,
            y,
            propensity,
            list(DASK_LEARNERS),
            self.economics,
            self.seed,
            self.num_threads,
            self.categorical,
            self.names,
            bar,
            logged_counts=summary.action_counts,
            rows_name="rows of the client sample",
        )
        metrics["learner_selection"] = {**selection, "on": "client sample", "local_only": ["dr"]}
        return chosen

    def fit_ranker(
        self, design: Any, sample: pd.DataFrame, summary: LogSummary, learner: str
    ) -> ActivityRanker:
        """Same models as ``ActivityRanker``: actions with too little support are not
        scored; ``s``/``s_ipw`` refit on every row for the early-stopped rounds / 0.8."""
        seen = summary.action_counts >= MIN_ACTION_SUPPORT
        if not seen.any():
            raise ValueError(too_few_rows(summary.action_counts))
        seen_codes = np.flatnonzero(seen)
        x = _rows_of(sample, self.names)
        actions = sample[ACTION_COL].to_numpy().astype(np.int64)
        probe = ActivityRanker(
            learner=learner, seed=self.seed, num_threads=self.num_threads, refit=False
        ).fit(
            x,
            actions,
            sample[LABEL_COL].to_numpy(),
            sample[PROPENSITY_COL].to_numpy(),
            categorical=self.categorical,
            feature_names=self.names,
        )
        kept = design[design[ACTION_COL].isin(seen_codes.astype(np.float64).tolist())]
        if learner == "t":
            boosters = self._fit_t(kept, summary, probe, x)
        else:
            kept = _drop_empty(self.client, kept)
            boosters = [self._fit_stacked(kept, summary, probe, learner, seen)]
        return ActivityRanker.from_parts(learner, boosters, seen, self.names, self.categorical)

    def _fit_stacked(self, kept, summary, probe, learner, seen):
        rounds = int(round(probe.boosters_[0].num_trees() / (1.0 - VALIDATION_FRACTION)))
        n_kept = int(summary.action_counts[seen].sum())
        weight = None
        if learner == "s_ipw":
            mean_inverse = summary.inverse_propensity[seen].sum() / n_kept
            weight = 1.0 / kept[PROPENSITY_COL].clip(PROPENSITY_FLOOR, 1.0) / mean_inverse
        x = kept[[*self.names, ACTION_COL]].rename(columns={ACTION_COL: ACTION_FEATURE})
        self.rounds["ranker"] = {"rounds": rounds, "learner": learner}
        # Local training refits with the parameters of its 80% split.
        n_params = int(round(n_kept * (1.0 - VALIDATION_FRACTION)))
        return fit_dask_classifier(
            self.client,
            x,
            kept[LABEL_COL],
            default_params("binary", self.seed, n_params),
            rounds,
            weight=weight,
            categorical=[*self.categorical, len(self.names)],
        )

    def _fit_t(self, kept, summary, probe, x_sample) -> list[Any]:
        """One model per action on its own rows, as local ``t``: an action with too little
        support gets none; one whose logged outcomes are all one class gets its smoothed
        rate from the whole log's counts, (positives + 1) / (count + 2), as a constant
        model over the sample's features (``models.ranker.constant_booster``)."""
        boosters: list[Any] = []
        trees, guessed = t_probe_trees(probe)
        self.rounds["ranker"] = {"learner": "t", "rounds": {}}
        for a in range(K):
            count, positives = int(summary.action_counts[a]), int(summary.action_positives[a])
            if count < MIN_ACTION_SUPPORT:
                boosters.append(None)
                continue
            if positives in (0, count):
                p = (positives + 1.0) / (count + 2.0)
                self.rounds["ranker"].setdefault("constant", {})[ACTIONS[a]] = p
                boosters.append(
                    constant_booster(
                        p,
                        x_sample,
                        categorical=self.categorical,
                        feature_names=self.names,
                        num_threads=self.num_threads,
                    )
                )
                continue
            rounds = int(round(trees[a] / (1.0 - VALIDATION_FRACTION)))
            self.rounds["ranker"]["rounds"][ACTIONS[a]] = rounds
            if guessed[a]:
                self.rounds["ranker"].setdefault("median_of_others", []).append(ACTIONS[a])
            rows = _drop_empty(self.client, kept[kept[ACTION_COL] == float(a)])
            n_params = int(round(count * (1.0 - VALIDATION_FRACTION)))
            boosters.append(
                fit_dask_classifier(
                    self.client,
                    rows[self.names],
                    rows[LABEL_COL],
                    default_params("binary", self.seed + a, n_params),
                    rounds,
                    categorical=self.categorical,
                )
            )
        return boosters


def t_probe_trees(probe: ActivityRanker, default: int = 100) -> tuple[list[int], list[bool]]:
    """Early-stopped trees per action from the client sample's ``t`` probe, and which of
    them are a stand-in: an action the probe has no real model for (too rare in the
    sample, or one outcome class there, which gives a 1-tree constant although the whole
    log may hold both) takes the median of the real ones (``default`` when there is none),
    so a constant's single tree never sets the rounds of a model trained on the cluster."""
    constant = getattr(probe, "constant_actions_", np.zeros(K, dtype=bool))
    real = [b is not None and not constant[a] for a, b in enumerate(probe.boosters_)]
    found = [b.num_trees() for b, ok in zip(probe.boosters_, real, strict=True) if ok]
    median = int(round(np.median(found))) if found else default
    trees = [b.num_trees() if ok else median for b, ok in zip(probe.boosters_, real, strict=True)]
    return trees, [not ok for ok in real]


def decoded_sample(sample: pd.DataFrame, encoder: FeatureEncoder) -> pd.DataFrame:
    """The client sample's features as the log holds them (category codes back to their
    values; the vocabulary is the whole log's, so every code decodes)."""
    out = pd.DataFrame(index=sample.index)
    for name in encoder.feature_names:
        column = sample[name]
        if name in encoder.categorical:
            vocabulary = np.asarray(encoder.vocabulary_[name] + [None], dtype=object)
            codes = column.fillna(len(vocabulary) - 1).to_numpy().astype(np.int64)
            out[name] = vocabulary[codes]
        else:
            out[name] = column.to_numpy()
    return out


def _array(series: pd.Series | None) -> np.ndarray | None:
    return None if series is None else series.to_numpy(dtype=np.float64)


def calibrated_openness(
    booster: Any, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None
) -> OpennessModel:
    """Isotonic calibration of a trained booster on held-out rows (as ``OpennessModel.fit``)."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(booster.predict(x), y, sample_weight=weight)
    return OpennessModel.from_parts(
        booster, {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    )
