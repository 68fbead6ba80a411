"""One decision for one live contact: openness, every activity ranked, the suggestion.

Built for the serving path: a numpy row, one openness predict and one ranker call that
returns both the predictions and the feature contributions used for reasons (the
contributions of a row sum to its raw score), with LightGBM on one thread.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from importlib import resources
from typing import Any

import numpy as np
import yaml

from models.activities import ACTION_INDEX, ACTIONS, NONE, VALUE_ACTIVITIES
from models.bundle import ModelBundle
from models.economics import Economics
from models.reasons import describe, language_of, top_reasons

# Openness bands: below 0.25 value enhancement rarely succeeds; from 0.45 it usually
# pays. Overridable per deployment.
DEFAULT_BANDS = (0.25, 0.45)


def load_hints() -> dict[str, dict[str, str]]:
    text = resources.files("models").joinpath("content/hints.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def band_of(score: float, bands: tuple[float, float]) -> str:
    return "low" if score < bands[0] else ("medium" if score < bands[1] else "high")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class Decider:
    """Scores one contact from a plain mapping of its features."""

    def __init__(
        self,
        bundle: ModelBundle,
        economics: Economics | None = None,
        bands: tuple[float, float] = DEFAULT_BANDS,
        num_threads: int = 1,
    ) -> None:
        self.bundle = bundle
        self.version = bundle.version
        self.economics = economics or bundle.economics
        self.bands = bands
        self.hints = load_hints()
        # Per-call thread count: LightGBM's default OpenMP threads collapse throughput
        # under gunicorn workers (design, performance facts).
        self._predict_kwargs = {"num_threads": num_threads}
        self._encoder = bundle.encoder
        self._openness = bundle.openness
        self._ranker = bundle.ranker
        self._costs = np.asarray(self.economics.action_costs())
        self._feature_names = self._encoder.feature_names
        if self._ranker is not None:
            self._seen = np.flatnonzero(self._ranker.actions_seen_)
            # The ranker's objective decides how contributions map to a probability.
            booster = self._ranker.boosters_[0] if self._ranker.stacked else None
            objective = booster.params.get("objective", "binary") if booster else "binary"
            self._logistic = "binary" in str(objective)

    @classmethod
    def from_bundle(cls, bundle: ModelBundle, economics: Economics | None = None) -> Decider:
        return cls(bundle, economics)

    # ------------------------------------------------------------------ scoring
    def _score_actions(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Success probability per action (NaN if unlearned) and per-action contributions."""
        success = np.full(len(ACTIONS), np.nan)
        ranker = self._ranker
        if ranker.stacked:
            matrix = np.empty((len(self._seen), row.shape[1] + 1))
            matrix[:, :-1] = row
            matrix[:, -1] = self._seen
            contrib = ranker.boosters_[0].predict(matrix, pred_contrib=True, **self._predict_kwargs)
            raw = contrib.sum(axis=1)
            success[self._seen] = _sigmoid(raw) if self._logistic else raw
            contributions = np.full((len(ACTIONS), contrib.shape[1]), np.nan)
            contributions[self._seen] = contrib
        else:
            contributions = np.full((len(ACTIONS), row.shape[1] + 1), np.nan)
            for a in self._seen:
                booster = ranker.boosters_[a]
                if booster is not None:
                    contributions[a] = booster.predict(
                        row, pred_contrib=True, **self._predict_kwargs
                    )[0]
                    success[a] = _sigmoid(contributions[a].sum())
        return np.clip(success, 0.001, 0.999), contributions

    def decide(
        self,
        features: Mapping[str, Any],
        *,
        language: str = "en",
        blocked_activities: Collection[str] = (),
        allow_attempt: bool = True,
    ) -> dict[str, Any]:
        lang = language_of(language)
        row = self._encoder.encode_row(features)
        openness = float(
            self._openness.calibrate(self._openness.booster_.predict(row, **self._predict_kwargs))[
                0
            ]
        )
        reasons: list[str] = []
        if self._ranker is None:
            return self._openness_only(openness, lang, allow_attempt)

        success, contributions = self._score_actions(row)
        values = success * self.economics.value_of_success - self._costs
        none_value = 0.0 if math.isnan(values[0]) else float(values[0])
        activities = []
        best, best_value = NONE, none_value
        for activity in VALUE_ACTIVITIES:
            a = ACTION_INDEX[activity]
            known = not math.isnan(success[a])
            value = float(values[a]) if known else None
            item_reasons = self._activity_reasons(a, contributions, features, lang) if known else []
            if not known:
                item_reasons = [
                    self._text(lang, "not learned from the training data", "学習データにない活動")
                ]
            elif activity in blocked_activities:
                item_reasons.append(
                    self._text(lang, "blocked by contact policy", "コンタクトポリシーにより除外")
                )
            elif allow_attempt and value > best_value:
                best, best_value = activity, value
            activities.append(
                {
                    "activity": activity,
                    "success_probability": None if not known else round(float(success[a]), 6),
                    "expected_value": None if value is None else round(value, 6),
                    "hint": self.hints[lang][activity],
                    "reasons": item_reasons,
                }
            )
        activities.sort(
            key=lambda item: (
                -math.inf if item["expected_value"] is None else item["expected_value"]
            ),
            reverse=True,
        )
        if best == NONE:
            reasons.append(
                self._text(
                    lang,
                    "no value activity pays for its extra handle time: resolve effortlessly",
                    "追加の対応時間に見合う価値向上活動がないため、手間なく解決を優先",
                )
                if allow_attempt
                else self._text(
                    lang,
                    "value attempt not allowed for this contact",
                    "この問い合わせでは価値向上の提案を行わない",
                )
            )
        return {
            "openness": {
                "score": round(openness, 6),
                "band": band_of(openness, self.bands),
                "attempt": best != NONE,
            },
            "activities": activities,
            "suggested_activity": best,
            "expected_value_none": round(none_value, 6),
            "reasons": reasons,
        }

    # ------------------------------------------------------------------ reasons
    def _activity_reasons(
        self, a: int, contributions: np.ndarray, features: Mapping[str, Any], lang: str
    ) -> list[str]:
        """Features that favour this activity over the other activities for this contact."""
        names = self._feature_names
        value_rows = [
            ACTION_INDEX[v]
            for v in VALUE_ACTIVITIES
            if not math.isnan(contributions[ACTION_INDEX[v], 0])
        ]
        relative = contributions[a, : len(names)] - np.mean(
            contributions[value_rows, : len(names)], axis=0
        )
        scores = dict(zip(names, relative.tolist(), strict=True))
        reasons = top_reasons(scores, features, lang)
        if not reasons:
            strongest = int(np.argmax(contributions[a, : len(names)]))
            reasons = [describe(names[strongest], features.get(names[strongest]), lang)]
        return reasons

    def _openness_only(self, openness: float, lang: str, allow_attempt: bool) -> dict[str, Any]:
        return {
            "openness": {
                "score": round(openness, 6),
                "band": band_of(openness, self.bands),
                "attempt": False,
            },
            "activities": [
                {
                    "activity": activity,
                    "success_probability": None,
                    "expected_value": None,
                    "hint": self.hints[lang][activity],
                    "reasons": [
                        self._text(
                            lang, "model has no activity ranker", "活動ランキングのないモデル"
                        )
                    ],
                }
                for activity in VALUE_ACTIVITIES
            ],
            "suggested_activity": NONE,
            "expected_value_none": 0.0,
            "reasons": [self._text(lang, "openness-only model", "開放度のみのモデル")],
        }

    @staticmethod
    def _text(lang: str, en: str, ja: str) -> str:
        return ja if lang == "ja" else en
