"""Batch scoring: every row of a log gets openness, each action's probability and a choice.

Vectorised over chunks (pandas and LightGBM on whole matrices), for offline analysis
and campaign planning; the online path is ``models.decision``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.activities import ACTIONS, VALUE_ACTIVITIES
from models.bundle import ModelBundle
from models.policy import action_names, choose_actions, expected_values

CHUNK_ROWS = 250_000


def score_arrays(bundle: ModelBundle, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Openness (n,) and success probability per action (n, 6), or None without a ranker."""
    x = bundle.encoder.transform(frame)
    openness = bundle.openness.predict_proba(x)
    success = bundle.ranker.predict_proba(x) if bundle.ranker is not None else None
    return openness, success


def score_frame(bundle: ModelBundle, frame: pd.DataFrame) -> pd.DataFrame:
    """One output row per input row, in input order."""
    parts = []
    for start in range(0, len(frame), CHUNK_ROWS):
        chunk = frame.iloc[start : start + CHUNK_ROWS]
        openness, success = score_arrays(bundle, chunk)
        if "interaction_id" in chunk:
            ids = chunk["interaction_id"].astype("string").to_numpy()
        else:
            ids = np.arange(start + 1, start + len(chunk) + 1)
        out = {"interaction_id": ids, "openness": openness}
        for i, action in enumerate(ACTIONS):
            if action in VALUE_ACTIVITIES or success is not None:
                out[f"p_{action}"] = success[:, i] if success is not None else np.nan
        if success is not None:
            values = expected_values(success, bundle.economics)
            chosen = choose_actions(values)
            out["suggested_activity"] = action_names(chosen)
            out["expected_value"] = np.take_along_axis(
                np.nan_to_num(values, nan=0.0), chosen[:, None], axis=1
            )[:, 0]
        else:
            out["suggested_activity"] = pd.array([None] * len(chunk), dtype="string")
        parts.append(pd.DataFrame(out))
    return pd.concat(parts, ignore_index=True)


def add_routes(scored: pd.DataFrame, frame: pd.DataFrame, pools_path: str, economics) -> None:
    """Add each row's route (``route_pool``, ``route_activity``, ``route_content``,
    ``route_reason``) from a pools file: the decision-time matching of
    ``models.matching`` without live availability (offline there is no queue)."""
    from models.matching import RoutingRules, route
    from models.pools import load_catalogue, load_config

    config, catalogue = load_config(pools_path), load_catalogue()
    rules = RoutingRules(
        value_of_success=economics.value_of_success,
        cost_per_second=economics.cost_per_second,
        extra_handle_time_s=dict(economics.extra_handle_time_s),
    )
    columns = {
        name: [] for name in ("route_pool", "route_activity", "route_content", "route_reason")
    }
    # Plain lists, not DataFrame.iterrows: a pandas Series per row cost ~10x the routing.
    p = {a: _values(scored, f"p_{a}") for a in VALUE_ACTIVITIES}
    p_none, suggested = _values(scored, "p_none"), _values(scored, "suggested_activity")
    openness = scored["openness"].to_numpy(dtype=np.float64)
    channel, language = _values(frame, "channel"), _values(frame, "language")
    segment = _values(frame, "segment")
    for i in range(len(scored)):
        activities = [
            {
                "activity": a,
                "success_probability": p[a][i],
                "expected_value": None
                if p[a][i] is None
                else p[a][i] * economics.value_of_success
                - economics.extra_handle_time_s.get(a, 0.0) * economics.cost_per_second,
            }
            for a in VALUE_ACTIVITIES
        ]
        answer = route(
            config,
            activity=suggested[i] or "none",
            activities=activities,
            openness=float(openness[i]),
            channel=channel[i],
            language=language[i],
            segment=segment[i],
            availability={},
            rules=rules,
            catalogue=catalogue,
            none_value=0.0 if p_none[i] is None else p_none[i] * economics.value_of_success,
        )
        columns["route_pool"].append(answer["pool"])
        columns["route_activity"].append(answer["activity"])
        columns["route_content"].append((answer["content"] or {}).get("id"))
        columns["route_reason"].append(answer["reason"])
    for name, values in columns.items():
        scored[name] = values


def _values(table: pd.DataFrame, name: str) -> list:
    """A column as plain Python values with None where missing (all None without it)."""
    if name not in table:
        return [None] * len(table)
    column = table[name].astype(object)
    return column.where(column.notna(), None).tolist()
