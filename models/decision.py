"""One decision for one live contact: openness, every activity ranked, the suggestion.

Built for the serving path: a numpy row, LightGBM's prepared single-row predictor on one
thread (``models.fast_predict``) for openness and for each action, and reasons looked up
in the bundle's precomputed table (``models.explain``) instead of per-row TreeSHAP.
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
from models.fast_predict import FastRowPredictor
from models.reasons import describe, language_of

# Openness bands: below 0.25 value enhancement rarely succeeds; from 0.45 it usually
# pays. Overridable per deployment.
DEFAULT_BANDS = (0.25, 0.45)
MAX_REASONS = 2


def load_hints() -> dict[str, dict[str, str]]:
    text = resources.files("models").joinpath("content/hints.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def band_of(score: float, bands: tuple[float, float]) -> str:
    return "low" if score < bands[0] else ("medium" if score < bands[1] else "high")


class Decider:
    """Scores one contact from a plain mapping of its features."""

    def __init__(
        self,
        bundle: ModelBundle,
        economics: Economics | None = None,
        bands: tuple[float, float] = DEFAULT_BANDS,
    ) -> None:
        self.bundle = bundle
        self.version = bundle.version
        self.economics = economics or bundle.economics
        self.bands = bands
        self.hints = load_hints()
        self._encoder = bundle.encoder
        self._calibrate = bundle.openness.calibrate
        self._ranker = bundle.ranker
        self._reasons = bundle.reasons
        self._costs = self.economics.action_costs()
        self._feature_names = self._encoder.feature_names
        n_features = len(self._feature_names)
        self._one = np.empty(1, dtype=np.float64)
        compiled_openness = getattr(bundle.openness, "compiled_", None)
        self.compiled = compiled_openness is not None
        self._openness = compiled_openness or FastRowPredictor(bundle.openness.booster_)
        if self._ranker is None:
            return
        self._seen = np.flatnonzero(self._ranker.actions_seen_)
        self._seen_list = self._seen.tolist()
        compiled = getattr(self._ranker, "compiled_", None)
        boosters = self._ranker.boosters_
        if self._ranker.stacked:
            # One matrix, a row per learned action, the action code in the last column.
            self._matrix = np.empty((len(self._seen), n_features + 1), dtype=np.float64)
            self._matrix[:, -1] = self._seen
            self._scores = np.empty(len(self._seen), dtype=np.float64)
            self._stacked_compiled = compiled[0] if compiled else None
            self._stacked_fast = None if compiled else FastRowPredictor(boosters[0])
        else:
            self._per_action = {
                a: (compiled[a] if compiled else FastRowPredictor(boosters[a]))
                for a in self._seen_list
                if boosters[a] is not None
            }

    def _predict_openness(self, row: np.ndarray) -> float:
        if isinstance(self._openness, FastRowPredictor):
            return float(self._openness.predict(row[0])[0])
        return float(self._openness.predict_into(row, self._one)[0])

    @classmethod
    def from_bundle(cls, bundle: ModelBundle, economics: Economics | None = None) -> Decider:
        return cls(bundle, economics)

    # ------------------------------------------------------------------ scoring
    def _score_actions(self, row: np.ndarray) -> list[float]:
        """Success probability per action; NaN for actions the ranker never learned."""
        success = [math.nan] * len(ACTIONS)
        if self._ranker.stacked:
            matrix = self._matrix
            matrix[:, :-1] = row
            if self._stacked_compiled is not None:
                scores = self._stacked_compiled.predict_into(matrix, self._scores).tolist()
            else:
                scores = [float(self._stacked_fast.predict(r)[0]) for r in matrix]
            for a, p in zip(self._seen_list, scores, strict=True):
                success[a] = min(max(p, 0.001), 0.999)
        else:
            for a, predictor in self._per_action.items():
                if isinstance(predictor, FastRowPredictor):
                    p = float(predictor.predict(row[0])[0])
                else:
                    p = float(predictor.predict_into(row, self._one)[0])
                success[a] = min(max(p, 0.001), 0.999)
        return success

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
        openness = float(self._calibrate(self._predict_openness(row)))
        reasons: list[str] = []
        if self._ranker is None:
            return self._openness_only(openness, lang, allow_attempt)

        success = self._score_actions(row)
        relative = self._reasons.row_scores(row[0]) if self._reasons is not None else None
        phrases: dict[int, str] = {}
        worth = self.economics.value_of_success
        values = [p * worth - cost for p, cost in zip(success, self._costs, strict=True)]
        none_value = 0.0 if math.isnan(values[0]) else float(values[0])
        activities = []
        best, best_value = NONE, none_value
        for activity in VALUE_ACTIVITIES:
            a = ACTION_INDEX[activity]
            known = not math.isnan(success[a])
            value = values[a] if known else None
            item_reasons = (
                self._activity_reasons(a, relative, features, lang, phrases) if known else []
            )
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
                    "success_probability": None if not known else round(success[a], 6),
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
        self,
        a: int,
        relative: list[list[float]] | None,
        features: Mapping[str, Any],
        lang: str,
        phrases: dict[int, str],
    ) -> list[str]:
        """Features whose values favour this activity over the others (models.explain)."""
        if relative is None:
            return []
        ranked = sorted(
            ((scores[a], j) for j, scores in enumerate(relative) if scores[a] > 1e-6),
            reverse=True,
        )[:MAX_REASONS]
        reasons = []
        for _, j in ranked:
            if j not in phrases:
                name = self._feature_names[j]
                phrases[j] = describe(name, features.get(name), lang)
            reasons.append(phrases[j])
        return reasons or [
            self._text(
                lang, "no feature stands out for this activity", "この活動に特に効く要因はなし"
            )
        ]

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
