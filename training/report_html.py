"""Render the JSON written by ``vea evaluate`` as ONE self-contained HTML report.

Self-contained means the file can be mailed, attached to a ticket or opened offline and
looks the same: CSS is inline, plots are matplotlib PNGs embedded as base64 ``data:``
URIs, and nothing refers to any external URL (no CDN, no fonts, no scripts). Plots are
drawn with the Agg canvas directly (``matplotlib.figure.Figure`` +
``FigureCanvasAgg``), never through pyplot, so rendering changes no global backend state
and works in threads and headless servers. Every piece of text from the evaluation dict is
HTML-escaped, and ``://`` in it is written as an entity so no text becomes a URL either.

Evaluation dict schema (``schema_version`` 1; every top-level key is optional and a
missing or empty section is simply left out, e.g. a model without an activity ranker has no
``uplift``/``policy_value``/``action_shares``)::

    {
      "schema_version": 1,
      "generated_at": "2025-01-31T12:00:00Z",          # when the evaluation ran
      "title": "optional report title",
      "model": {                                      # the evaluated bundle's manifest summary
        "version": str, "created_at": str, "learner": str,
        "features": [str], "data_fingerprint": str, "training_rows": int,
        ... any further scalars (shown in the summary table)
      },
      "data": {"path": str, "rows": int, "fingerprint": str, ...},   # the evaluation data
      "reward": {"name": "ve_success", "description": str},          # what policy values measure
      "openness": {                                   # training.metrics.classification_metrics
        "n", "base_rate", "mean_predicted", "auc", "pr_auc", "brier", "log_loss",
        "ece", "ece_uniform", "ece_binning": "equal_frequency", "bins",
        "calibration": [{"bin", "lower", "upper", "count", "weight",
                         "mean_predicted", "observed_rate", "gap"}]
      },
      "uplift": {                                     # per activity: training.metrics.qini_curve
        "<activity>": {"fraction": [..], "qini": [..], "uplift": [..], "random": [..],
                       "perfect": [..], "auuc", "auuc_random", "qini_area",
                       "qini_coefficient", "ate", "n_treated", "n_control"}
      },
      "policy_value": {                               # training.ope.evaluate_policy per policy
        "<policy>": {
          "label": "optional display name",
          "ips":   {"value", "ci_low", "ci_high", "n"},        # Estimate.to_dict()
          "snips": {...}, "dr": {...},                         # dr only with a reward model
          "true": float | null,                                # simulator ground truth
          "diagnostics": {"ess", "ess_fraction", "max_weight",
                          "mean_weight", "unsupported_mass"}   # training.ope.diagnostics
        }
      },
      "comparisons": {                                # training.ope.compare_policies
        "<name>": {"a": "<policy>", "b": "<policy>", "estimator": "dr",
                   "value", "ci_low", "ci_high", "n"}         # value(b) - value(a)
      },
      "oracle_fraction": float | null,   # model's true value / oracle's true value (simulator)
      "action_shares": {"<policy>": {"<action>": share}},    # shares sum to 1 per policy
      "model_card": {
        "intended_use": str, "limits": [str], "features": [str],
        "data_fingerprint": str, "training_data": {...}, ... further keys shown as-is
      },
      "warnings": [str]
    }

Conventional policy names, drawn in this order before any others: ``model`` (the evaluated
model's policy), ``logging`` (the policy that produced the logs), ``best_single`` (the
best always-the-same-activity policy; its ``label`` says which), ``random`` (uniform over
the actions) and ``oracle`` (the best action by the simulator's true probabilities).
``always:<activity>`` entries may follow. Unknown top-level keys are shown as JSON at the
end, so producers can add information before this renderer learns to draw it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.activities import ACTIONS

SCHEMA_VERSION = 1
POLICY_ORDER = ("model", "logging", "best_single", "random", "oracle")
ESTIMATOR_PREFERENCE = ("dr", "snips", "ips")
_KNOWN_KEYS = {
    "schema_version",
    "generated_at",
    "title",
    "model",
    "data",
    "reward",
    "openness",
    "uplift",
    "policy_value",
    "comparisons",
    "oracle_fraction",
    "action_shares",
    "model_card",
    "warnings",
}
# An estimate whose importance weights leave fewer effective rows than this is warned of:
# the retrain gate trusts no interval below it (training.retrain.MIN_ESS; heavy-tailed
# weights make bootstrap intervals too narrow). The share of rows alone says little: a
# policy that always takes one of six activities keeps ~10-15% of any log, so a share
# that mattered would warn on every evaluation, while 60 rows at 20% are 12 rows' worth.
_LOW_ESS = 100.0
# Or below this share of the rows: a few rows carry the estimate however large the log.
_LOW_ESS_FRACTION = 0.01

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Hiragino Sans","Noto Sans JP",
sans-serif;margin:0;color:#1f2933;background:#f5f7fa;line-height:1.45}
header{background:#243b53;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#d9e2ec;font-size:13px}
nav{padding:8px 32px;background:#fff;border-bottom:1px solid #d9e2ec;font-size:14px}
nav a{margin-right:16px;color:#334e68;text-decoration:none}
main{padding:8px 32px 40px;max-width:1200px}
section{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:12px 20px;margin:16px 0}
h2{font-size:18px;margin:6px 0 10px;color:#102a43}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:6px 0 10px}
th,td{border-bottom:1px solid #e4e7eb;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f0f4f8;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #d9e2ec;border-radius:6px;padding:8px 14px;min-width:150px}
.card .k{font-size:12px;color:#627d98}.card .v{font-size:20px;font-weight:600}
.warn{background:#fffbea;border:1px solid #f0b429;border-radius:6px;padding:8px 14px}
.warn li{margin:2px 0}.err{background:#ffe3e3;border:1px solid #e12d39;border-radius:6px;
padding:8px 14px}.muted{color:#627d98;font-size:13px}img{max-width:100%;height:auto}
pre{background:#f0f4f8;padding:8px;overflow:auto;font-size:12px}
"""


# --------------------------------------------------------------------------- text helpers


def _e(value: Any) -> str:
    """Escape any value for HTML text or attributes, and keep text from forming URLs."""
    return html.escape(str(value), quote=True).replace("://", "&#58;//")


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _fmt(value: Any, digits: int = 4) -> str:
    """Numbers to short text: ints with separators, floats to ``digits`` significant digits."""
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "&ndash;"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-4):
            return f"{value:.{digits - 1}e}"
        if abs(value) >= 1000:
            return f"{value:,.1f}"
        return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return _e(", ".join(str(v) for v in value))
    if isinstance(value, Mapping):
        return _e(json.dumps(value, ensure_ascii=False, default=str))
    return _e(value)


def _pct(value: Any) -> str:
    x = _num(value)
    return "&ndash;" if x is None else f"{100 * x:.1f}%"


class _Raw(str):
    """Already-rendered HTML for a numeric table cell (not escaped again)."""


def _td(value: Any) -> str:
    if isinstance(value, _Raw):
        return f'<td class="num">{value}</td>'
    cls = ' class="num"' if _num(value) is not None else ""
    return f"<td{cls}>{_fmt(value)}</td>"


def _ci(est: Mapping[str, Any] | None) -> _Raw | None:
    if est is None:
        return None
    return _Raw(f"[{_fmt(est.get('ci_low'))}, {_fmt(est.get('ci_high'))}]")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv_table(data: Mapping[str, Any], skip: tuple[str, ...] = ()) -> str:
    rows = [[k, v] for k, v in data.items() if k not in skip]
    return _table(["field", "value"], rows) if rows else ""


def _card(label: str, value_html: str) -> str:
    return (
        f'<div class="card"><div class="k">{_e(label)}</div><div class="v">{value_html}</div></div>'
    )


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{_e(anchor)}"><h2>{_e(title)}</h2>{body}</section>'


# --------------------------------------------------------------------------- plot helpers


def _figure(width: float = 6.4, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _img(fig: Figure, alt: str) -> str:
    """PNG as a base64 data URI (metadata without the 'Software' URL tag)."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _estimate(entry: Any) -> dict[str, float | None] | None:
    """An Estimate-like dict (or object with to_dict) as floats, or None if unusable."""
    if entry is None:
        return None
    if hasattr(entry, "to_dict"):
        entry = entry.to_dict()
    if not isinstance(entry, Mapping) or _num(entry.get("value")) is None:
        return None
    return {k: _num(entry.get(k)) for k in ("value", "ci_low", "ci_high")} | {"n": entry.get("n")}


def _ordered(names: list[str]) -> list[str]:
    first = [n for n in POLICY_ORDER if n in names]
    return first + [n for n in names if n not in POLICY_ORDER]


def _policy_label(name: str, entry: Mapping[str, Any]) -> str:
    label = entry.get("label") if isinstance(entry, Mapping) else None
    return str(label) if label else name


# --------------------------------------------------------------------------- sections


def _summary(ev: Mapping[str, Any], warnings: list[str]) -> str:
    model = ev.get("model") if isinstance(ev.get("model"), Mapping) else {}
    data = ev.get("data") if isinstance(ev.get("data"), Mapping) else {}
    cards = []
    if model.get("version") is not None:
        cards.append(_card("model version", _e(model["version"])))
    if data.get("rows") is not None:
        cards.append(_card("evaluation rows", _fmt(data["rows"])))
    op = ev.get("openness") if isinstance(ev.get("openness"), Mapping) else {}
    for key, label in (("auc", "openness AUC"), ("ece", "openness ECE")):
        if _num(op.get(key)) is not None:
            cards.append(_card(label, _fmt(op[key], 3)))
    pv = ev.get("policy_value") if isinstance(ev.get("policy_value"), Mapping) else {}
    for name in ("model", "logging"):
        est, which = _best_estimate(pv.get(name))
        if est is not None:
            cards.append(_card(f"{name} policy value ({which})", _fmt(est["value"], 3)))
    if _num(ev.get("oracle_fraction")) is not None:
        cards.append(_card("share of oracle value", _pct(ev["oracle_fraction"])))
    body = f'<div class="cards">{"".join(cards)}</div>' if cards else ""

    comps = ev.get("comparisons") if isinstance(ev.get("comparisons"), Mapping) else {}
    lines = []
    for name, c in comps.items():
        est = _estimate(c)
        if est is None:
            continue
        verdict = "no significant difference"
        if est["ci_low"] is not None and est["ci_low"] > 0:
            verdict = "b is better (95% CI above 0)"
        elif est["ci_high"] is not None and est["ci_high"] < 0:
            verdict = "b is worse (95% CI below 0)"
        lines.append(
            f"<li><b>{_e(name)}</b>: {_e(c.get('b', 'b'))} &minus; {_e(c.get('a', 'a'))} = "
            f"{_fmt(est['value'])} [{_fmt(est['ci_low'])}, {_fmt(est['ci_high'])}]"
            f" ({_e(c.get('estimator', ''))}): {_e(verdict)}</li>"
        )
    if lines:
        body += "<h3>Policy comparisons</h3><ul>" + "".join(lines) + "</ul>"

    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        body += f'<div class="warn"><b>Warnings</b><ul>{items}</ul></div>'

    meta = []
    if model:
        meta.append("<h3>Model</h3>" + _kv_table(model, skip=("features",)))
        feats = model.get("features")
        if isinstance(feats, (list, tuple)) and feats:
            meta.append(f'<p class="muted">features: {_e(", ".join(map(str, feats)))}</p>')
    if data:
        meta.append("<h3>Evaluation data</h3>" + _kv_table(data))
    if isinstance(ev.get("reward"), Mapping):
        meta.append("<h3>Reward</h3>" + _kv_table(ev["reward"]))
    return _section("summary", "Summary", body + "".join(meta))


def _best_estimate(entry: Any) -> tuple[dict[str, Any] | None, str]:
    if not isinstance(entry, Mapping):
        return None, ""
    for key in ESTIMATOR_PREFERENCE:
        est = _estimate(entry.get(key))
        if est is not None:
            return est, key
    return None, ""


def _openness(op: Mapping[str, Any]) -> str:
    parts = []
    keys = (
        "n",
        "base_rate",
        "mean_predicted",
        "auc",
        "pr_auc",
        "brier",
        "log_loss",
        "ece",
        "ece_uniform",
        "ece_binning",
        "bins",
    )
    rows = [[k, op.get(k)] for k in keys if k in op]
    rows += [[k, v] for k, v in op.items() if k not in keys and k != "calibration"]
    if rows:
        parts.append(_table(["metric", "value"], rows))
    table = [r for r in op.get("calibration") or [] if isinstance(r, Mapping)]
    points = [
        (_num(r.get("mean_predicted")), _num(r.get("observed_rate")), _num(r.get("count")))
        for r in table
    ]
    points = [(x, y, c or 1.0) for x, y, c in points if x is not None and y is not None]
    if points:
        fig = _figure(5.2, 4.4)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot([0, 1], [0, 1], linestyle="--", color="#9aa5b1", label="perfectly calibrated")
        xs, ys, cs = zip(*points, strict=True)
        top = max(cs)
        ax.plot(xs, ys, color="#2680c2", marker="o", label="model")
        ax.scatter(xs, ys, s=[20 + 180 * c / top for c in cs], color="#2680c2", alpha=0.35)
        hi = min(1.0, max(max(xs), max(ys)) * 1.1 + 0.02)
        ax.set_xlim(0, hi)
        ax.set_ylim(0, hi)
        ax.set_xlabel("mean predicted openness (bin)")
        ax.set_ylabel("observed success rate")
        binning = str(op.get("ece_binning", "equal_frequency")).replace("_", "-")
        ax.set_title(f"Reliability ({binning} bins; marker size = rows)")
        ax.legend(loc="upper left", fontsize=8)
        parts.insert(0, _img(fig, "calibration curve of the openness model"))
    if table:
        cols = ["bin", "lower", "upper", "count", "mean_predicted", "observed_rate", "gap"]
        parts.append("<h3>Reliability table</h3>")
        parts.append(_table(cols, [[r.get(c) for c in cols] for r in table]))
    return _section("openness", "Openness model: calibration and ranking", "".join(parts))


def _uplift(up: Mapping[str, Any]) -> str:
    acts = [a for a, v in up.items() if isinstance(v, Mapping)]
    curves = [
        a
        for a in acts
        if up[a].get("fraction")
        and up[a].get("qini")
        and len(up[a]["fraction"]) == len(up[a]["qini"])
    ]
    parts = [
        '<p class="muted">Treated = rows where the activity was logged, control = rows where '
        "<i>none</i> was logged, both weighted by 1/propensity. The Qini curve is the gain in "
        "successes per treated row from treating the top fraction ranked by the model; the "
        "dashed line is random targeting. Qini coefficient: the area between the curve and "
        "random, over the same area for a perfect ranking of these rows (1 = perfect, "
        "0 = random, below 0 = worse than random); with 0/1 outcomes even the true effect "
        "ranking scores well below 1."
        "</p>"
    ]
    if curves:
        ncol = min(3, len(curves))
        nrow = math.ceil(len(curves) / ncol)
        fig = _figure(4.2 * ncol, 3.3 * nrow)
        for i, act in enumerate(curves, start=1):
            c = up[act]
            ax = fig.add_subplot(nrow, ncol, i)
            frac = [float(x) for x in c["fraction"]]
            ax.plot(frac, c["qini"], color="#2680c2", label="model")
            if c.get("random") and len(c["random"]) == len(frac):
                ax.plot(frac, c["random"], linestyle="--", color="#9aa5b1", label="random")
            else:
                end = _num(c["qini"][-1]) or 0.0
                ax.plot([0, 1], [0, end], linestyle="--", color="#9aa5b1", label="random")
            coef = _num(c.get("qini_coefficient"))
            ax.set_title(act + (f"  (Qini {coef:.3f})" if coef is not None else ""), fontsize=10)
            ax.set_xlabel("fraction targeted")
            ax.set_ylabel("incremental successes / treated")
            ax.legend(fontsize=7, loc="best")
        parts.append(_img(fig, "Qini curves per activity"))
    cols = ["qini_coefficient", "qini_area", "auuc", "auuc_random", "ate", "n_treated", "n_control"]
    rows = [[a] + [up[a].get(c) for c in cols] for a in acts]
    if rows:
        parts.append(_table(["activity", *cols], rows))
    return _section("uplift", "Activity ranker: uplift (Qini)", "".join(parts))


def _policy_value(pv: Mapping[str, Any], ev: Mapping[str, Any]) -> str:
    names = _ordered([n for n, v in pv.items() if isinstance(v, Mapping)])
    parts = []
    reward = ev.get("reward")
    if isinstance(reward, Mapping) and reward.get("name"):
        parts.append(
            f'<p class="muted">Reward: {_e(reward["name"])}. '
            f"{_e(reward.get('description', ''))}</p>"
        )
    bars = []
    for name in names:
        est, which = _best_estimate(pv[name])
        true = _num(pv[name].get("true"))
        if est is not None or true is not None:
            bars.append((name, _policy_label(name, pv[name]), est, which, true))
    if bars:
        fig = _figure(7.2, 0.55 * len(bars) + 1.4)
        ax = fig.add_subplot(1, 1, 1)
        ys = list(range(len(bars)))[::-1]
        for y, (_, _, est, _which, true) in zip(ys, bars, strict=True):
            if est is not None:
                v = est["value"]
                lo = est["ci_low"] if est["ci_low"] is not None else v
                hi = est["ci_high"] if est["ci_high"] is not None else v
                ax.barh(y, v, color="#2680c2", alpha=0.8)
                ax.errorbar(
                    v, y, xerr=[[max(v - lo, 0.0)], [max(hi - v, 0.0)]], color="#102a43", capsize=4
                )
            elif true is not None:
                ax.barh(y, true, color="#cbd2d9", hatch="//")
            if true is not None:
                ax.plot([true], [y], marker="D", color="#e12d39", linestyle="none")
        ax.set_yticks(ys)
        ax.set_yticklabels(
            [f"{label} ({which})" if which else label for _, label, _, which, _ in bars],
            fontsize=9,
        )
        ax.axvline(0, color="#52606d", linewidth=0.8)
        ax.set_xlabel("value per interaction")
        parts.append(_img(fig, "policy value with 95% confidence intervals"))
        parts.append(
            '<p class="muted">Bars: off-policy estimate (estimator in brackets) with its 95% '
            "bootstrap interval; red diamonds: true value (simulated data only); hatched bars: "
            "true value without an estimate.</p>"
        )
    rows = []
    for name in names:
        entry = pv[name]
        row: list[Any] = [_policy_label(name, entry)]
        for key in ("dr", "snips", "ips"):
            est = _estimate(entry.get(key))
            row += [None if est is None else est["value"], _ci(est)]
        diag = entry.get("diagnostics") if isinstance(entry.get("diagnostics"), Mapping) else {}
        row += [_num(entry.get("true")), diag.get("ess"), diag.get("max_weight")]
        rows.append(row)
    if rows:
        head = [
            "policy",
            "DR",
            "DR 95% CI",
            "SNIPS",
            "SNIPS 95% CI",
            "IPS",
            "IPS 95% CI",
            "true",
            "ESS",
            "max weight",
        ]
        parts.append(_table(head, rows))
    if _num(ev.get("oracle_fraction")) is not None:
        parts.append(
            f"<p>The model policy reaches {_pct(ev['oracle_fraction'])} of the "
            "oracle policy's true value.</p>"
        )
    return _section("policy", "Policy value (off-policy)", "".join(parts))


def _action_shares(shares: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    names = _ordered([n for n, v in shares.items() if isinstance(v, Mapping)])
    if not names:
        return ""
    extra = sorted({a for n in names for a in shares[n] if a not in ACTIONS})
    actions = list(ACTIONS) + extra
    actions = [a for a in actions if any(_num(shares[n].get(a)) for n in names)] or list(ACTIONS)
    fig = _figure(7.2, 0.5 * len(names) + 1.6)
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(len(names)))[::-1]
    left = [0.0] * len(names)
    colors = ["#9aa5b1", "#2680c2", "#3ebd93", "#f0b429", "#e12d39", "#8e6ac8", "#52606d"]
    for j, act in enumerate(actions):
        vals = [_num(shares[n].get(act)) or 0.0 for n in names]
        ax.barh(ys, vals, left=left, color=colors[j % len(colors)], label=act)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_yticks(ys)
    ax.set_yticklabels([labels.get(n, n) for n in names], fontsize=9)
    ax.set_xlim(0, max(1.0, max(left)))
    ax.set_xlabel("share of interactions")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    rows = [[labels.get(n, n)] + [_Raw(_pct(shares[n].get(a))) for a in actions] for n in names]
    table = _table(["policy", *actions], rows)
    return _section("actions", "Action shares", _img(fig, "action shares per policy") + table)


def _model_card(card: Mapping[str, Any]) -> str:
    parts = []
    if card.get("intended_use"):
        parts.append(f"<h3>Intended use</h3><p>{_e(card['intended_use'])}</p>")
    limits = card.get("limits")
    if isinstance(limits, (list, tuple)) and limits:
        parts.append("<h3>Limits</h3><ul>" + "".join(f"<li>{_e(x)}</li>" for x in limits) + "</ul>")
    elif limits:
        parts.append(f"<h3>Limits</h3><p>{_e(limits)}</p>")
    feats = card.get("features")
    if isinstance(feats, (list, tuple)) and feats:
        parts.append("<h3>Features</h3><p>" + _e(", ".join(map(str, feats))) + "</p>")
    if card.get("data_fingerprint"):
        parts.append(
            f"<h3>Training data fingerprint</h3><p><code>{_e(card['data_fingerprint'])}</code></p>"
        )
    if isinstance(card.get("training_data"), Mapping):
        parts.append("<h3>Training data</h3>" + _kv_table(card["training_data"]))
    rest = {
        k: v
        for k, v in card.items()
        if k not in ("intended_use", "limits", "features", "data_fingerprint", "training_data")
    }
    if rest:
        parts.append("<h3>Other</h3>" + _kv_table(rest))
    return _section("model-card", "Model card", "".join(parts))


def in_sample_warning(version: Any) -> str:
    """The warning for a model evaluated on the very file it was trained on."""
    model = f"model {version}" if version else "the model"
    return (
        f"{model} was trained on this very data (same fingerprint): these figures are "
        "in-sample, on its own training data, and flatter the model; evaluate it on rows "
        "it has not seen"
    )


def derived_warnings(ev: Mapping[str, Any]) -> list[str]:
    """Warnings the reader should see even if the producer did not add them (an
    evaluation JSON from before ``training.evaluate`` added them itself): the same text
    in the report, the JSON and on the console."""
    out = []
    model, data = ev.get("model"), ev.get("data")
    if isinstance(model, Mapping) and isinstance(data, Mapping):
        fp = model.get("data_fingerprint")
        if fp and fp == data.get("fingerprint"):
            out.append(in_sample_warning(model.get("version")))
    pv = ev.get("policy_value")
    if isinstance(pv, Mapping):
        few: list[str] = []
        for name, entry in pv.items():
            if not isinstance(entry, Mapping):
                continue
            impossible = _impossible_estimates(entry)
            if impossible:
                low, high = entry["value_range"]
                out.append(
                    f"Policy {name}: {impossible} outside what a contact can be worth under "
                    f"it ({low:.2f} to {high:.2f}, by the economics): a few rows with large "
                    "importance weights decide it; it is no value to act on."
                )
            diag = entry.get("diagnostics")
            if not isinstance(diag, Mapping):
                continue
            ess, frac = _num(diag.get("ess")), _num(diag.get("ess_fraction"))
            if (ess is not None and ess < _LOW_ESS) or (
                frac is not None and frac < _LOW_ESS_FRACTION
            ):
                rows = _num(diag.get("n"))
                of = f" of {rows:.0f} rows" if rows is not None and not few else ""
                few.append(f"{name} {ess or 0:.1f}{of}")
            mass = _num(diag.get("unsupported_mass"))
            if mass is not None and mass > 0.01:
                out.append(
                    f"Policy {name}: {100 * mass:.1f}% of its choices were never taken by "
                    "the logging policy; IPS/SNIPS are biased there, prefer DR."
                )
        if few:
            out.append(
                f"Off-policy estimates resting on few rows (effective sample size below "
                f"{_LOW_ESS:.0f}, as the retrain gate requires, or under "
                f"{_LOW_ESS_FRACTION:.0%} of the rows): {', '.join(few)}; their intervals "
                "may be too narrow."
            )
    return out


def _impossible_estimates(entry: Mapping[str, Any]) -> str:
    """The estimates (or intervals) of a policy entry outside its ``value_range``, the
    least and most a contact can be worth under the policy, as text ('' when none): IPS
    and DR are unbounded, and 31.05 where a contact is worth at most 20 reads as a value."""
    bounds = entry.get("value_range")
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return ""
    low, high = (_num(b) for b in bounds)
    if low is None or high is None:
        return ""
    slack = 1e-9 * max(1.0, abs(low), abs(high))  # float round-off of an exact bound
    found = []
    for key in ("dr", "ips", "snips"):
        est = _estimate(entry.get(key))
        if est is None:
            continue
        value, lo, hi = est["value"], est["ci_low"], est["ci_high"]
        if value is not None and not low - slack <= value <= high + slack:
            found.append(f"{key.upper()} {value:.2f}")
        elif (lo is not None and lo < low - slack) or (hi is not None and hi > high + slack):
            ends = ", ".join("?" if end is None else f"{end:.2f}" for end in (lo, hi))
            found.append(f"{key.upper()}'s 95% interval [{ends}]")
    return ", ".join(found) + (" lies" if len(found) == 1 else " lie") if found else ""


# --------------------------------------------------------------------------- entry point


def render_html(evaluation: Mapping[str, Any]) -> str:
    """The report as an HTML string (see the module docstring for the input schema)."""
    ev: Mapping[str, Any] = evaluation if isinstance(evaluation, Mapping) else {}
    raw_warnings = ev.get("warnings")
    if isinstance(raw_warnings, (list, tuple)):
        warnings = [str(w) for w in raw_warnings]
    else:
        warnings = [str(raw_warnings)] if raw_warnings else []
    warnings += [w for w in derived_warnings(ev) if w not in warnings]

    builders: list[tuple[str, str, Callable[[], str]]] = []
    if isinstance(ev.get("openness"), Mapping) and ev["openness"]:
        builders.append(("openness", "Openness", lambda: _openness(ev["openness"])))
    if isinstance(ev.get("uplift"), Mapping) and ev["uplift"]:
        builders.append(("uplift", "Uplift", lambda: _uplift(ev["uplift"])))
    if isinstance(ev.get("policy_value"), Mapping) and ev["policy_value"]:
        builders.append(("policy", "Policy value", lambda: _policy_value(ev["policy_value"], ev)))
    if isinstance(ev.get("action_shares"), Mapping) and ev["action_shares"]:
        pv = ev.get("policy_value") if isinstance(ev.get("policy_value"), Mapping) else {}
        labels = {n: _policy_label(n, e) for n, e in pv.items() if isinstance(e, Mapping)}
        builders.append(
            ("actions", "Action shares", lambda: _action_shares(ev["action_shares"], labels))
        )
    if isinstance(ev.get("model_card"), Mapping) and ev["model_card"]:
        builders.append(("model-card", "Model card", lambda: _model_card(ev["model_card"])))
    other = {k: v for k, v in ev.items() if k not in _KNOWN_KEYS}
    if other:
        builders.append(
            (
                "other",
                "Other",
                lambda: _section(
                    "other",
                    "Other information",
                    "<pre>"
                    + _e(json.dumps(other, indent=2, ensure_ascii=False, default=str))
                    + "</pre>",
                ),
            )
        )

    # A section that fails to draw (malformed input) must not cost the reader the rest of
    # the report, which comes at the end of a long evaluation: show the error in its place.
    sections, nav = [], ['<a href="#summary">Summary</a>']
    for anchor, title, build in builders:
        try:
            html_part = build()
        except Exception as exc:  # reported in the page and in the warnings
            warnings.append(f"section {title!r} could not be rendered: {exc!r}")
            html_part = _section(
                anchor, title, f'<div class="err">could not render: {_e(repr(exc))}</div>'
            )
        if html_part:
            sections.append(html_part)
            nav.append(f'<a href="#{_e(anchor)}">{_e(title)}</a>')

    model = ev.get("model") if isinstance(ev.get("model"), Mapping) else {}
    title = ev.get("title") or f"vea evaluation: model {model.get('version', 'unknown')}"
    sub = []
    if ev.get("generated_at"):
        sub.append(f"generated {_e(ev['generated_at'])}")
    sub.append(f"schema {_e(ev.get('schema_version', SCHEMA_VERSION))}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1><p>{' &middot; '.join(sub)}</p></header>"
        f"<nav>{''.join(nav)}</nav><main>{_summary(ev, warnings)}{''.join(sections)}</main>"
        "</body></html>\n"
    )


def render_report(evaluation: Mapping[str, Any], out_path: str | os.PathLike[str]) -> Path:
    """Write the self-contained HTML report for ``evaluation`` to ``out_path``; return the path.

    Written to a temporary file and renamed, so a crash never leaves half a report behind.
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render_html(evaluation)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out
