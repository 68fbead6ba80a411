"""The `vea` command line: one entry point for ML engineers and operators.

Every command turns the domain errors (bad data, bad spec, tampered bundle, unknown
version) into a one-line message and a non-zero exit, and writes nothing on failure.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import pandas as pd  # training.loading imports it anyway

from models.activities import ACTIONS, NONE
from models.bundle import BundleError, compile_bundle
from models.ranker import MIN_ACTION_SUPPORT
from models.registry import Registry, RegistryError
from training.fit import UNKNOWN_REWARD
from training.loading import (
    ColumnsMissing,
    DataError,
    check_pool_propensity,
    load_log,
    read_table,
    say_note,
    write_table,
)
from training.retrain import (
    bootstrap_option,
    learner_option,
    numbered,
    refuse_overflowing,
    reward_from_options,
    reward_options,
    threads_option,
)
from training.settings import registry_option, setting, setting_if_set
from training.spec import API_VALUES, Spec, SpecError, values_live_decisions_lack

USER_ERRORS = (DataError, SpecError, BundleError, RegistryError, FileNotFoundError, ValueError)


def model_data_options(func):
    """``--model``, ``--data`` and ``--spec`` of the commands that apply a stored model to a
    log (evaluate, score)."""
    for option in reversed(
        (
            click.option(
                "--model",
                "model_ref",
                default="champion",
                show_default=True,
                help="A version from `vea models list`, or champion.",
            ),
            click.option(
                "--data",
                type=click.Path(exists=True),
                required=True,
                help="Interaction log (CSV or Parquet file, or a Parquet directory).",
            ),
            click.option(
                "--spec",
                "spec_path",
                type=click.Path(exists=True, dir_okay=False),
                help="YAML mapping your log's columns to vea's (see examples/); default: the "
                "model's own.",
            ),
        )
    ):
        func = option(func)
    return func


def _compile(bundle, cache: str) -> None:
    """Natively compiled forests from ``cache`` (VEA_COMPILE_CACHE); "" turns them off,
    as in the service."""
    if cache:
        compile_bundle(bundle, cache)


class UserErrorGroup(click.Group):
    """Reports expected failures as `Error: ...` with exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            raise click.ClickException(str(exc)) from exc
        except Exception as exc:
            unreachable = _unreachable_database(exc)
            if unreachable is None:
                raise
            raise click.ClickException(unreachable) from exc


def _unreachable_database(exc: Exception) -> str | None:
    """The message for a service command whose database cannot be reached or is not
    migrated yet, else None."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    if not isinstance(exc, OperationalError | ProgrammingError):
        return None
    from service.config import safe_url

    url = os.environ.get("VEA_DATABASE_URL") or "the default SQLite database"
    # The driver's first line says why (refused, no such file); no statement or values.
    why = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else "unreachable"
    shown = safe_url(url) if "://" in url else url
    # A table missing (SQLite's "no such table", PostgreSQL's undefined_table): the
    # database answered, its schema is not there yet.
    if why.startswith("no such table") or getattr(exc.orig, "sqlstate", None) == "42P01":
        return f"VEA_DATABASE_URL: {shown} is not migrated ({why}): run `vea db upgrade`"
    if isinstance(exc, ProgrammingError):
        return None
    return f"VEA_DATABASE_URL: cannot reach {shown}: {why}"


@click.group(cls=UserErrorGroup)
@click.version_option(package_name="vea")
def cli() -> None:
    """vea: value-enhancement assist for contact centers."""


def _load_for_scoring(registry: str, model_ref: str):
    """A verified bundle with natively compiled forests when possible (same predictions)."""
    reg = Registry(registry)
    bundle = reg.load(reg.resolve(model_ref))
    _compile(bundle, setting("compile_cache"))
    return bundle


def _spec(path: str | None) -> Spec | None:
    return Spec.from_file(path) if path else None


def _load_for_model(
    data: str,
    spec_path: str | None,
    bundle,
    model_ref: str,
    *,
    require_outcome: bool = True,
    warnings: list[str] | None = None,
):
    """The log read in the model's layout (its spec unless --spec), with the model's
    numeric features checked as numbers. A log lacking the layout's columns is often
    meant for another model (the default --model is the champion): the message says
    which model was used and how to name another. A warning goes to ``warnings`` when
    given (the caller shows it with its others), else to stderr."""
    spec = _spec(spec_path) or (Spec.from_dict(bundle.spec) if bundle.spec else None)
    try:
        frame = load_log(
            data,
            spec,
            require_outcome=require_outcome,
            numeric_features=bundle.encoder.numeric,
        )
    except ColumnsMissing as exc:
        which = f"model {bundle.version}" + (" (the champion)" if model_ref == "champion" else "")
        if spec_path:
            layout = f"the layout of --spec {spec_path}"
        elif bundle.spec:
            layout = "the layout of the spec it was trained with"
        else:
            layout = "the canonical columns (it was trained without a spec)"
        raise DataError(
            f"{exc}. This used {which}, which reads {layout}. If the data is for another "
            "model, name it with --model VERSION (`vea models list` lists the versions, "
            "newest first) or give its layout with --spec SPEC"
        ) from exc
    absent = [
        name
        for name in bundle.encoder.feature_names
        if name not in frame.columns or frame[name].isna().all()
    ]
    if absent:
        # Scored as all missing, the model answers from its priors: figures that look
        # like results and mean little (another data set's model, e.g. the champion).
        warning = (
            f"model {bundle.version} reads {', '.join(absent)}, which this data does not "
            "have: they count as missing on every row; a model for this data: --model "
            "VERSION (`vea models list`)"
        )
        if warnings is None:
            click.echo(f"warning: {warning}", err=True)
        else:
            warnings.append(warning)
    return frame


def _truth_beside(data: Path) -> Path | None:
    candidate = data.with_name(f"{data.stem}.truth{data.suffix}")
    return candidate if candidate.exists() else None


def _truth_for(truth_path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """The simulator truth of ``frame``'s rows, in their order (by interaction_id when both
    have it); a DataError naming what does not match when the file is not that truth."""
    truth = read_table(truth_path)
    needed = [f"p_{a}" for a in ACTIONS]
    missing = [c for c in needed if c not in truth.columns]
    if len(missing) == len(needed):
        raise DataError(
            f"{truth_path}: not a truth file: it has no p_<activity> columns (a simulator "
            f"truth has {', '.join(needed)}); vea simulate writes one beside its log"
        )
    if missing:
        raise DataError(f"{truth_path}: truth file lacks {', '.join(missing)}")
    if "interaction_id" in frame and "interaction_id" in truth:
        ids = frame["interaction_id"].astype(str)
        truth = truth.assign(interaction_id=truth["interaction_id"].astype(str))
        absent = ids[~ids.isin(truth["interaction_id"])]
        if len(absent):
            examples = ", ".join(absent.head(3))
            raise DataError(
                f"{truth_path}: {len(absent)} of the data's {len(ids)} interaction ids are "
                f"not in the truth file (e.g. {examples}): it is the truth of another log"
            )
        repeated = truth["interaction_id"][truth["interaction_id"].duplicated()]
        if len(repeated):
            raise DataError(
                f"{truth_path}: interaction id {repeated.iloc[0]} appears more than once "
                "in the truth file"
            )
        return truth.set_index("interaction_id").loc[ids].reset_index()
    if len(truth) != len(frame):
        raise DataError(
            f"{truth_path}: the truth file has {len(truth)} rows and the data {len(frame)} "
            "(and not both have interaction_id to match them by)"
        )
    return truth


@cli.command()
@click.option("--rows", type=click.IntRange(min=1), required=True, help="Interactions to simulate.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same log)."
)
@click.option(
    "--agents",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Simulated agents (their skill per activity drives pool proficiency).",
)
@click.option("--out", type=click.Path(dir_okay=False), required=True, help=".parquet or .csv")
def simulate(rows: int, seed: int, agents: int, out: str) -> None:
    """Simulated interaction log with known true success probabilities (and a truth file)."""
    from training.simulate import simulate as run
    from training.simulate import write_simulation

    if Path(out).suffix.lower() not in (".csv", ".parquet"):
        raise click.BadParameter("use a .csv or .parquet file name", param_hint="--out")
    log, truth = run(rows=rows, seed=seed, n_agents=agents)
    truth_path = write_simulation(log, truth, out)
    click.echo(f"wrote {len(log)} rows to {out} and the ground truth to {truth_path}")


@cli.command()
@click.option(
    "--data",
    required=True,
    help="Interaction log (CSV or Parquet). --engine dask: a Parquet file or directory, "
    "local, shared or a URL such as s3://bucket/log/.",
)
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML mapping your log's columns to vea's (see examples/); kept in the bundle.",
)
@registry_option
@learner_option("auto", "Activity learner; auto picks by off-policy value.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed (same data, same model)."
)
@threads_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--engine",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="local: in this process. dask: LightGBM on a Dask cluster (training/distributed.py).",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Dask scheduler, e.g. tcp://HOST:8786 (default: start a LocalCluster).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="LocalCluster worker processes (one thread each) when no --scheduler is given.",
)
@click.option(
    "--compile/--no-compile",
    "compile_forests",
    default=True,
    show_default=True,
    help="Compile the forests to native code now (cached; scoring and serving reuse it).",
)
@reward_options
def train(
    data,
    spec_path,
    registry,
    learner,
    seed,
    threads,
    quiet,
    engine,
    scheduler,
    workers,
    compile_forests,
    reward,
    reward_weights,
) -> None:
    """Train a bundle and store it in the registry; prints the new version."""
    workers_given = (
        click.get_current_context().get_parameter_source("workers")
        is not click.core.ParameterSource.DEFAULT
    )
    if workers_given and (engine != "dask" or scheduler):
        # Only a LocalCluster is sized by it: accepted elsewhere, it would do nothing.
        raise click.UsageError(
            "--workers sizes the LocalCluster of --engine dask without --scheduler"
        )
    # Checked before training, not after minutes of it.
    compile_cache = setting("compile_cache") if compile_forests else ""
    spec = _spec(spec_path)
    chosen = reward_from_options(reward, reward_weights, spec)
    if spec is not None:
        spec.reward = chosen  # the spec's apply() carries the reward's columns along
    if engine == "dask" and not chosen.is_default:
        raise click.UsageError(f"--reward {chosen.name} needs --engine local")
    if engine == "dask":
        from training.distributed import train_bundle_dask

        bundle = train_bundle_dask(
            data,
            spec,
            learner=learner,
            seed=seed,
            scheduler=scheduler,
            workers=workers,
            num_threads=threads,
            progress=not quiet,
            note=lambda message: click.echo(message, err=True),
        )
    else:
        from training.distributed import data_fingerprint
        from training.fit import train_bundle

        if scheduler:
            raise click.UsageError("--scheduler needs --engine dask")
        if not Path(data).exists():
            raise click.BadParameter(f"Path {data!r} does not exist.", param_hint="'--data'")
        # A propensity too small to weigh by overflows the openness weights and the
        # learners' out-of-fold values (as it would the gate's): refused by row.
        frame = refuse_overflowing(numbered(load_log(data, spec, note=say_note)))
        for name, foreign in values_live_decisions_lack(frame).items():
            click.echo(
                f"note: {name} holds {', '.join(foreign)}, which the decision API never "
                f"sends (it takes {', '.join(API_VALUES[name])}): served live, the model "
                f"never sees these values; map them to vea's with values: {{{name}: ...}} "
                "in the spec",
                err=True,
            )
        bundle = train_bundle(
            frame,
            spec=spec,
            learner=learner,
            seed=seed,
            num_threads=threads,
            progress=not quiet,
            # A Parquet directory has no bytes of its own to hash: its listing instead.
            data_fingerprint=data_fingerprint(data),
            reward=chosen,
        )
    metrics = bundle.manifest.get("metrics") or {}
    learned = (
        {a for a, seen in zip(ACTIONS, bundle.ranker.actions_seen_, strict=True) if seen}
        if bundle.ranker is not None
        else None
    )
    if learned is not None and learned <= {NONE}:
        counts = ", ".join(f"{a} {n}" for a, n in (metrics.get("action_counts") or {}).items())
        click.echo(
            f"note: no value activity has the {MIN_ACTION_SUPPORT} logged rows the ranker "
            "needs: the model "
            f"learned only none and never suggests an activity (rows: {counts})",
            err=True,
        )
    selection = metrics.get("learner_selection") or {}
    if selection.get("note"):
        # The same text as the bundle's metrics: a learner that was not really chosen
        # must not pass unnoticed.
        click.echo(f"note: {selection['note']}", err=True)
    left_out = (bundle.manifest.get("reward") or {}).get("left_out") or 0
    if left_out:
        click.echo(
            f"note: reward {chosen.label}: {left_out} rows left out (not known: {UNKNOWN_REWARD})",
            err=True,
        )
    reg = Registry(registry)
    version = reg.add(bundle)
    # Warm the compile cache now, so scoring and every service worker load in ms.
    _compile(bundle, compile_cache)
    champion = " (champion)" if reg.champion() == version else ""
    click.echo(f"{version}{champion}")


@cli.command()
@model_data_options
@click.option(
    "--truth", type=click.Path(exists=True), help="Simulator truth (default: beside the data)."
)
@click.option(
    "--report", type=click.Path(dir_okay=False), help="Write a self-contained HTML report."
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Write the evaluation JSON."
)
@bootstrap_option("Bootstrap resamples (of customers) for the 95% intervals.")
@click.option(
    "--shadow",
    "shadow_version",
    is_flag=False,
    flag_value="newest",
    default=None,
    help="Compare the champion with a shadow challenger on the live log (an export): DR "
    "values, the paired improvement with its 95% interval, and the gate's verdict. "
    "Optionally the shadow VERSION (default: the newest one in the log).",
)
@click.option(
    "--routing",
    type=click.Choice(["general-only", "best-proficiency", "random-eligible"]),
    default=None,
    help="Off-policy value (DR, 95% CI) of this routing policy on a vea export with "
    "randomized routing (pool_propensity); pools the log never tried for a context are "
    "reported as unsupported. With --activity: the joint (activity, pool) policy.",
)
@click.option(
    "--activity",
    "routing_activity",
    default=None,
    help="With --routing: always suggest this activity (joint policy; probability = "
    "propensity x pool_propensity). Default: the activity as logged.",
)
@click.option(
    "--pools",
    "routing_pools",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="With --routing: the pools config the log was routed with (default: the one the "
    "service routes with, as `vea pools show`: stored in the service database, else "
    "VEA_POOLS, else the shipped default).",
)
@reward_options
@registry_option
def evaluate(
    model_ref,
    data,
    spec_path,
    truth,
    report,
    json_path,
    bootstrap,
    shadow_version,
    routing,
    routing_activity,
    routing_pools,
    reward,
    reward_weights,
    registry,
) -> None:
    """Calibration, uplift and off-policy policy value of a model on a log."""
    from training.evaluate import evaluate_bundle
    from training.report_html import render_report

    if shadow_version is not None:
        _evaluate_shadow(
            data, shadow_version, json_path, bootstrap, registry, reward, reward_weights
        )
        return
    if reward is not None or reward_weights is not None:
        # Plain evaluation always values a model on the reward it was trained on (its
        # manifest); accepting --reward here and ignoring it would mislead.
        raise click.UsageError(
            "--reward / --reward-weights need --shadow (without it, a model is evaluated "
            "on the reward it was trained on)"
        )
    if routing is not None:
        _evaluate_routing(data, routing, routing_activity, routing_pools, json_path, bootstrap)
        return
    if routing_activity is not None:
        raise click.BadParameter("--activity needs --routing", param_hint="--activity")
    from training.distributed import data_fingerprint

    bundle = _load_for_scoring(registry, model_ref)
    loading_warnings: list[str] = []
    frame = _load_for_model(data, spec_path, bundle, model_ref, warnings=loading_warnings)
    truth_path = Path(truth) if truth else _truth_beside(Path(data))
    truth_frame = None
    if truth_path is not None:
        truth_frame = _truth_for(truth_path, frame)
    # The same fingerprint training stores (a Parquet directory: its listing).
    info = {"path": str(data), "fingerprint": data_fingerprint(data)}
    if truth_path is not None:
        info["truth"] = str(truth_path)
    result = evaluate_bundle(bundle, frame, truth=truth_frame, data_info=info, n_boot=bootstrap)
    result["warnings"][:0] = loading_warnings
    # On the console whatever the output options: a figure read off the summary (or the
    # JSON on stdout) must not mislead while the warning sits in a file.
    for warning in result["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    text = json.dumps(result, indent=2, default=str, allow_nan=False)
    if json_path:
        _write_text(Path(json_path), text)
    if report:
        render_report(result, report)
    if not json_path and not report:
        click.echo(text)
    else:
        click.echo(_summary(result))


def _evaluate_routing(data, policy, activity, pools_path, json_path, bootstrap) -> None:
    """``vea evaluate --routing``: a routing (or joint) policy valued on an export."""
    from training.ope import evaluate_routing_log

    config, source = _routing_config(pools_path)
    # Every row checked as the other commands check it (an activity not in the list, a
    # ve_success of 7, a propensity outside (0, 1]), and the pool's probability too.
    frame = check_pool_propensity(load_log(data), str(data))
    result = evaluate_routing_log(frame, config, policy, activity=activity, n_boot=bootstrap)
    result["pools_config"] = source
    result["warnings"] = _routing_warnings(frame, config, result, source)
    # On the console whatever the output options, as plain evaluate's warnings.
    for warning in result["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    text = json.dumps(result, indent=2, default=str, allow_nan=False)
    if json_path:
        _write_text(Path(json_path), text)
    dr = result["estimates"].get("dr")
    lines = [
        f"{result['kind']} policy {policy} (activity: {result['activity']}) on "
        f"{result['rows_evaluated']} of {result['rows']} routed rows ({result['scope']})",
        f"DR {dr['value']:.4f} (95% CI {dr['ci_low']:.4f} to {dr['ci_high']:.4f}); logged "
        f"{result['logged_value']:.4f} on the same rows"
        if dr
        else "no row where the policy is supported by the log: no estimate",
    ]
    unsupported = {p: m for p, m in result["unsupported_by_pool"].items() if m > 0}
    if unsupported:
        lines.append(
            "unsupported (never tried by the log in that context; not estimated): "
            + ", ".join(f"{p} {m:.1%}" for p, m in unsupported.items())
        )
    click.echo(text if not json_path else "\n".join(lines))


# `vea evaluate --routing` warns when more of the log than this is left out because its
# pool is not in the config, and when the estimate's effective sample size is below this
# share of the rows it rests on.
ROUTING_WARN_SHARE = 0.10


def _routing_config(pools_path: str | None):
    """The pools config to value routing with, and where it comes from: ``--pools``, else
    the config the service routes with (``vea pools show``'s: the one stored in the
    service database when it has one, else VEA_POOLS's file)."""
    from models.pools import load_config

    if pools_path:
        return load_config(pools_path), f"--pools {pools_path}"
    file_path = setting("pools")
    file_config = load_config(file_path)
    try:
        from service.pools import config_at
    except ImportError:  # a training-only install: no service database to read
        return file_config, f"the pools file {file_path}"
    config, source = config_at(setting("database_url"), file_config)
    if source == "database":
        return config, "the service database (as `vea pools show`)"
    return config, f"the pools file {file_path} (nothing stored in the service database)"


def _routing_warnings(frame, config, result: dict, source: str) -> list[str]:
    """Why a routing estimate may mislead: much of the log routed to pools the config does
    not have (another config than the log's), or weights resting on a few rows."""
    from models.pools import DIGITAL_CONTENT

    warnings = []
    pools = frame["pool_id"] if "pool_id" in frame.columns else None
    if pools is not None and "routed_pool_id" in frame.columns:
        pools = frame["routed_pool_id"].fillna(frame["pool_id"])
    if pools is not None:
        # Self-service: no pool, in any config. (A missing pool is no self-service: the
        # loader's text columns hold <NA>, whose comparison is NA, not True.)
        pools = pools[(pools != DIGITAL_CONTENT).fillna(True).astype(bool)]
        unknown = pools[~pools.isin([p.id for p in config.pools])]
        if len(pools) and len(unknown) > ROUTING_WARN_SHARE * len(pools):
            named = ", ".join(
                f"{pool} {count}" for pool, count in unknown.value_counts(dropna=False)[:5].items()
            )
            warnings.append(
                f"{len(unknown)} of {len(pools)} routed rows ({len(unknown) / len(pools):.0%}) "
                f"left out: their pool is not in the pools config ({named}); the config is "
                f"from {source}: give the one the log was routed with (--pools FILE)"
            )
    diagnostics = result.get("diagnostics") or {}
    ess, rows = diagnostics.get("ess"), result.get("rows_evaluated") or 0
    if ess is not None and rows and ess < ROUTING_WARN_SHARE * rows:
        warnings.append(
            f"the estimate rests on an effective sample size of {ess:.1f} of {rows} rows "
            f"({ess / rows:.1%}): a few rows with large weights decide it, the interval "
            "may be too narrow"
        )
    return warnings


def _evaluate_shadow(
    data: str,
    version: str,
    json_path: str | None,
    bootstrap: int,
    registry: str,
    reward_name: str | None,
    reward_weights: str | None,
) -> None:
    from training.retrain import champion_reward
    from training.shadow import compare_shadow

    reg = Registry(registry)
    champion = reg.load_champion() if reg.champion() else None
    if reward_name is None and reward_weights is None:
        # The champion's own reward: what the deployment optimises now, and the reward
        # a plain `vea retrain` gates on (the same default); --reward names another.
        reward, _source = champion_reward(champion)
    else:
        reward = reward_from_options(reward_name, reward_weights)
    result = compare_shadow(
        load_log(data),
        version=None if version == "newest" else version,
        economics=champion.economics if champion is not None else None,
        n_boot=bootstrap,
        reward=reward,
    )
    text = json.dumps(result, indent=2, default=str, allow_nan=False)
    if json_path:
        _write_text(Path(json_path), text)
    gain = result["improvement"]
    left_out = f", {result['left_out']} rows left out: reward unknown" if result["left_out"] else ""
    click.echo(
        f"shadow {result['shadow_version']} vs champion on {result['rows']} decisions "
        f"({result['customers']} customers, {result['measures']}) on reward "
        f"{result['reward']}{left_out}:\n"
        f"  champion DR {result['champion_value']['value']:.4f}  "
        f"shadow DR {result['shadow_value']['value']:.4f}\n"
        f"  improvement {gain['value']:+.4f} [{gain['ci_low']:+.4f}, {gain['ci_high']:+.4f}]"
        f"  agreement {result['agreement']:.1%}  ESS {result['diagnostics']['ess']:.0f}\n"
        f"  {result['verdict']}"
    )
    if not json_path:
        click.echo(text)


def _summary(result: dict) -> str:
    lines = [f"model {result['model']['version']} on {result['data']['rows']} rows"]
    held = result["data"].get("holdout_rows_left_out")
    if held:
        lines[0] += (
            f" ({held} holdout contacts left out: they get `none` whatever the model, so no "
            "policy is valued on them)"
        )
    o = result.get("openness") or {}
    if o and not o.get("n"):
        lines.append(f"openness: {o.get('note') or 'n/a: no rows to measure it on'}")
    elif o:
        # A metric is None (null in the JSON) when it cannot be had, e.g. AUC on outcomes
        # of one class: n/a, with the evaluation's note saying why.
        figures = "  ".join(
            f"{label} {'n/a' if o.get(key) is None else format(o[key], '.4f')}"
            for key, label in (("auc", "AUC"), ("ece", "ECE"), ("brier", "Brier"))
        )
        lines.append(f"openness: {figures}" + (f" ({o['note']})" if o.get("note") else ""))
    for name, entry in (result.get("policy_value") or {}).items():
        dr = entry.get("dr") or {}
        true = entry.get("true")
        est = f"DR {dr['value']:.4f} [{dr['ci_low']:.4f}, {dr['ci_high']:.4f}]" if dr else ""
        lines.append(f"  {name:<26} {est}" + (f"  true {true:.4f}" if true is not None else ""))
    if result.get("oracle_fraction") is not None:
        lines.append(f"policy value / oracle value (truth): {result['oracle_fraction']:.4f}")
        lines.append(
            f"policy value / oracle that also knows the agent: "
            f"{result['oracle_fraction_with_agent']:.4f}"
        )
    return "\n".join(lines)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


@cli.command()
@model_data_options
@click.option("--out", type=click.Path(dir_okay=False), required=True, help=".csv or .parquet")
@click.option(
    "--pools",
    "pools_path",
    type=click.Path(exists=True, dir_okay=False),
    default=lambda: setting_if_set("pools"),
    help="Pools file: add each row's route (default: VEA_POOLS when set).",
)
@registry_option
def score(model_ref, data, spec_path, out, pools_path, registry) -> None:
    """Batch decisions for every row of a log."""
    from training.score import add_routes, score_frame

    if Path(out).suffix.lower() not in (".csv", ".parquet"):
        raise click.BadParameter("use a .csv or .parquet file name", param_hint="--out")
    bundle = _load_for_scoring(registry, model_ref)
    frame = _load_for_model(data, spec_path, bundle, model_ref, require_outcome=False)
    scored = score_frame(bundle, frame)
    if pools_path:
        add_routes(scored, frame, pools_path, bundle.economics)
    # Scores are read in Excel: with the BOM it shows Japanese ids and reasons as text.
    write_table(scored, out, byte_order_mark=True)
    click.echo(f"scored {len(scored)} rows with {bundle.version} -> {out}")


@cli.group()
def models() -> None:
    """List, promote and roll back model versions."""


@models.command("list")
@registry_option
@click.option("--json", "as_json", is_flag=True, help="Print the manifests' summaries as JSON.")
def models_list(registry, as_json) -> None:
    """Every model version in the registry, newest first: created, learner, training rows
    and reward; * marks the champion (serving), s the shadow challenger, BROKEN a bundle
    that fails verification, legacy a bundle written before manifests carried a checksum
    (its model files are verified, its manifest is not)."""
    versions = Registry(registry).versions()
    if as_json:
        click.echo(json.dumps(versions, indent=2, default=str))
        return
    if not versions:
        click.echo(f"no models in {registry}")
        return
    shadow = Registry(registry).shadow()
    # The champion first, whatever its age or state: a broken one is listed last.
    champion = next((v for v in versions if v.get("is_champion")), None)
    if champion is None:
        click.echo("champion: none (decisions answer degraded): vea models promote VERSION")
    else:
        broken = f"  BROKEN: {champion['broken']}" if "broken" in champion else ""
        click.echo(f"champion: {champion['version']}{broken}")
    if shadow:
        click.echo(f"shadow: {shadow}")
    for v in versions:
        mark = "*" if v.get("is_champion") else "s" if v["version"] == shadow else " "
        status = (
            f"BROKEN: {v['broken']}"
            if "broken" in v
            else (
                f"{v.get('created_at')}  learner={v.get('learner')}  rows={v.get('training_rows')}"
                f"  reward={_reward_said(v)}"
            )
        )
        if "legacy" in v:
            # Short on the line (the note itself is in --json): an edit of this bundle's
            # economics or features would go unnoticed, unlike a newer bundle's.
            status += "  legacy: manifest not covered by a checksum (retrain to replace it)"
        click.echo(f"{mark} {v['version']}  {status}")


def _reward_said(version: dict) -> str:
    """A listed model's reward: its label, and what it holds when a spec mapped the
    user's own success column onto it (``ve_success`` learned from Hillstrom's visit)."""
    from models.schema import Reward, RewardError

    label = version.get("reward") or "ve_success"
    described = version.get("reward_description")
    try:
        standard = Reward.from_dict(label).describe()
    except RewardError:  # weighted(...): its label says it all
        return label
    return f"{label} ({described})" if described and described != standard else label


@models.command("promote")
@click.argument("version")
@click.option("--reason", default="manual promotion", help="Recorded in the registry history.")
@registry_option
def models_promote(version, reason, registry) -> None:
    """Make VERSION the champion: every worker swaps it in within VEA_CHAMPION_POLL_S
    seconds, after verifying and smoke-testing it (recorded in the audit log)."""
    _check_audit_settings()
    reg = Registry(registry)
    # What changed comes from the registry, read under its lock (as the API does): read
    # here before it, a promotion racing this one was audited with a stale previous.
    change = reg.promote_change(version, reason=reason, forced=True, actor="cli")
    if change.changed:
        # Promoting the champion again changes nothing, recorded nowhere: not audited.
        _audit_model_action(
            "model.promote", version, {"previous": change.previous, "reason": reason}
        )
    click.echo(f"champion: {version}" + ("" if change.changed else " (already the champion)"))
    extra = reg.load(reg.resolve(version)).extra_features
    if extra:
        click.echo(
            f"note: the model reads {', '.join(extra)}: live decisions must send them in "
            "`features`, else the model sees missing values",
            err=True,
        )


@models.command("rollback")
@registry_option
def models_rollback(registry) -> None:
    """Serve the previous champion again (recorded in the audit log)."""
    _check_audit_settings()
    # The champion rolled back from, read under the registry's lock: read before it, a
    # rollback racing this one made it audit "V1, previous V1" for a recorded V2 -> V1.
    change = Registry(registry).rollback_change(actor="cli")
    _audit_model_action("model.rollback", change.champion, {"previous": change.previous})
    click.echo(f"champion: {change.champion} (was {change.previous})")


@models.command("shadow")
@click.argument("version", required=False)
@click.option("--off", is_flag=True, help="stop the shadow challenger")
@registry_option
def models_shadow(version, off, registry) -> None:
    """Let VERSION decide beside the champion on live traffic (never served).

    Each decision then stores the shadow's choice and probabilities; compare them with
    `vea evaluate --shadow` on an export. Without VERSION: show the current shadow.
    """
    reg = Registry(registry)
    if off or version:
        _check_audit_settings()
    if off:
        if version:
            raise click.UsageError("give a VERSION or --off, not both")
        previous = reg.clear_shadow(actor="cli")
        _audit_model_action("model.shadow", None, {"previous": previous, "stopped": True})
        click.echo(f"shadow stopped: {previous}" if previous else "no shadow was running")
        return
    if not version:
        click.echo(f"shadow: {reg.shadow() or 'none'}")
        return
    resolved = reg.resolve(version)
    previous = reg.set_shadow(resolved, actor="cli")  # read under the lock, as recorded
    _audit_model_action("model.shadow", resolved, {"previous": previous})
    click.echo(f"shadow: {version} (champion: {reg.champion()})")


def _check_audit_settings() -> None:
    """A model change is recorded in the service database right after it, read from the
    service's settings: checked before the change, so a bad one stops the command with
    one line naming it instead of a change made and a vague warning after it."""
    from service.config import Settings

    Settings.from_env()


def _audit_model_action(action: str, target: str | None, details: dict) -> None:
    """Record the change in the service's audit log (right after it: the registry is on
    disk); a training-only install or an unreachable database only warns.

    The database is the service's: VEA_DATABASE_URL, or unset, the same default as the
    service's, ``var/vea.db`` under the working directory (where `make run` runs)."""
    try:
        from service.audit import record_cli_model_action
    except ImportError:
        return
    from service.config import Settings, safe_url, variable
    from service.db import sqlite_file

    url = Settings.from_env().database_url
    where = safe_url(url)
    if variable("database_url") not in os.environ:
        where += f" (VEA_DATABASE_URL unset: the service's default, under {Path.cwd()})"
    path = sqlite_file(url)
    if path and not Path(path).exists():
        # No service database here (a training machine, or another directory than the
        # service's): trying would leave an empty database file behind.
        click.echo(f"warning: not recorded in the audit log: no database at {where}", err=True)
        return
    if not record_cli_model_action(action, target, details):
        click.echo(
            f"warning: not recorded in the audit log: the service database {where} is unavailable",
            err=True,
        )


def _attach_service_commands() -> None:
    """The service adds serve/db/keys; the CLI works without it (e.g. training-only installs)."""
    try:
        from service import cli as service_cli
    except ImportError:
        return
    for name in ("serve", "db", "keys", "export", "report", "pools", "audit"):
        command = getattr(service_cli, name, None)
        if command is not None:
            cli.add_command(command, name)


_attach_service_commands()


def _attach_learning_loop() -> None:
    """`vea retrain` (training/retrain.py): export through the attached `export` command."""
    from training.retrain import retrain_command

    cli.add_command(retrain_command, "retrain")


_attach_learning_loop()


def main() -> None:
    try:
        cli(prog_name="vea")
    except Exception as exc:  # noqa: BLE001 - a bug: reported without its messages
        _report_bug(exc)
        sys.exit(1)


def _report_bug(exc: Exception) -> None:
    """An unexpected error (a bug; expected ones are `Error: ...` lines) on stderr as the
    service logs one: the traceback's frames and exception types, not their messages,
    which can quote the data being read (a customer id in a failed statement's
    parameters) into a scheduled command's log."""
    try:
        from service.logs import scrubbed_traceback
    except ImportError:  # a training-only install
        traceback_text = ""
    else:
        traceback_text = scrubbed_traceback(exc) + "\n"
    click.echo(
        f"{traceback_text}Error: unexpected {type(exc).__name__} (a bug: please report it "
        "with this traceback, whose messages are left out: they can quote data)",
        err=True,
    )


if __name__ == "__main__":
    sys.exit(main())
