"""One decision for one live contact: openness, every activity ranked, the suggestion.

Built for the serving path: a numpy row, LightGBM's prepared single-row predictor on one
thread (``models.fast_predict``) for openness and for each action, and reasons looked up
in the bundle's precomputed table (``models.explain``) instead of per-row TreeSHAP.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np
import yaml

from models.activities import ACTION_INDEX, ACTIONS, NONE, VALUE_ACTIVITIES
from models.bundle import ModelBundle
from models.compiled import CompiledForest
from models.economics import Economics
from models.fast_predict import FastRowPredictor
from models.reasons import describe_cached, language_of

# Openness bands: below 0.25 value enhancement rarely succeeds; from 0.45 it usually
# pays. Callers may pass others (``bands``); the service has no setting for them.
DEFAULT_BANDS = (0.25, 0.45)
MAX_REASONS = 2  # ``_top_two`` picks them
# A feature is a reason for an activity only when it favours it by more than this.
MIN_REASON_SCORE = 1e-6
VALUE_ACTIVITY_CODES = tuple((activity, ACTION_INDEX[activity]) for activity in VALUE_ACTIVITIES)
VALUE_CODES = tuple(a for _, a in VALUE_ACTIVITY_CODES)


def load_hints() -> dict[str, dict[str, str]]:
    text = resources.files("models").joinpath("content/hints.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def band_of(score: float, bands: tuple[float, float]) -> str:
    return "low" if score < bands[0] else ("medium" if score < bands[1] else "high")


def _top_two(relative: list[list[float]], actions: Sequence[int]) -> list[list[int]]:
    """For each action code in ``actions``, the (at most two) features favouring it most:
    the indices ``j`` of ``sorted(((s[a], j) for j, s in enumerate(relative)
    if s[a] > MIN_REASON_SCORE), reverse=True)[:2]``, ties going to the later feature
    like that sort does.

    One pass per action instead of a sort: this runs for every activity of every decision.
    """
    if not relative:
        return [[] for _ in actions]
    columns = list(zip(*relative, strict=True))  # per action code: every feature's score
    top: list[list[int]] = []
    for a in actions:
        s1 = s2 = MIN_REASON_SCORE
        j1 = j2 = -1
        for j, s in enumerate(columns[a]):
            if s > MIN_REASON_SCORE:  # never true for NaN
                if s >= s1:
                    s2, j2, s1, j1 = s1, j1, s, j
                elif s >= s2:
                    s2, j2 = s, j
        top.append([j1, j2] if j2 >= 0 else ([j1] if j1 >= 0 else []))
    return top


class Decider:
    """Scores one contact from a plain mapping of its features.

    Not safe to share across threads while deciding: one decision fills buffers that
    belong to the Decider (the service runs one decision at a time per Decider)."""

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
        # The contact's encoded row, refilled in place by every decision: the predictors
        # below hold pointers to it (or to the stacked matrix built from it).
        self._row = np.empty((1, n_features), dtype=np.float64)
        self._one = np.empty(1, dtype=np.float64)
        compiled_openness = getattr(bundle.openness, "compiled_", None)
        self.compiled = compiled_openness is not None
        self._openness_raw = self._row_predictor(
            compiled_openness or FastRowPredictor(bundle.openness.booster_)
        )
        if self._ranker is None:
            return
        self._seen = np.flatnonzero(self._ranker.actions_seen_)
        self._seen_list = self._seen.tolist()
        compiled = getattr(self._ranker, "compiled_", None)
        boosters = self._ranker.boosters_
        self._stacked_scores: Callable[[], list[float]] | None = None
        self._per_action: list[tuple[int, Callable[[], float]]] = []
        if self._ranker.stacked:
            # One matrix, a row per learned action, the action code in the last column.
            self._matrix = np.empty((len(self._seen), n_features + 1), dtype=np.float64)
            self._matrix[:, -1] = self._seen
            self._scores = np.empty(len(self._seen), dtype=np.float64)
            if compiled:
                predict = compiled[0].bind(self._matrix, self._scores)
                self._stacked_scores = lambda: predict().tolist()
            else:
                fast = FastRowPredictor(boosters[0])
                # Rows are views: the bound predictors read the matrix's refills.
                by_row = [fast.bind(r) for r in self._matrix]
                self._stacked_scores = lambda: [float(row_predict()[0]) for row_predict in by_row]
        else:
            self._per_action = [
                (a, self._row_predictor(compiled[a] if compiled else FastRowPredictor(boosters[a])))
                for a in self._seen_list
                if boosters[a] is not None
            ]

    def _row_predictor(self, model: CompiledForest | FastRowPredictor) -> Callable[[], float]:
        """The model's prediction for ``self._row`` as it is when called."""
        predict = (
            model.bind(self._row[0])
            if isinstance(model, FastRowPredictor)
            else model.bind(self._row, self._one)
        )
        return lambda: float(predict()[0])

    @classmethod
    def from_bundle(cls, bundle: ModelBundle, economics: Economics | None = None) -> Decider:
        return cls(bundle, economics)

    # ------------------------------------------------------------------ scoring
    def _score_actions(self) -> list[float]:
        """Success probability per action for ``self._row``; NaN for actions the ranker
        never learned."""
        success = [math.nan] * len(ACTIONS)
        if self._stacked_scores is not None:
            self._matrix[:, :-1] = self._row
            for a, p in zip(self._seen_list, self._stacked_scores(), strict=True):
                success[a] = min(max(p, 0.001), 0.999)
        else:
            for a, predict in self._per_action:
                success[a] = min(max(predict(), 0.001), 0.999)
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
        encoded = self._encoder.encode_values(features)
        self._row[0] = encoded
        openness = float(self._calibrate(self._openness_raw()))
        reasons: list[str] = []
        if self._ranker is None:
            return self._openness_only(openness, lang, allow_attempt)

        success = self._score_actions()
        favoured = self._favoured_phrases(encoded, features, lang, success)
        hints = self.hints[lang]
        worth = self.economics.value_of_success
        values = [p * worth - cost for p, cost in zip(success, self._costs, strict=True)]
        none_value = 0.0 if math.isnan(values[0]) else float(values[0])
        activities = []
        order_keys = []
        best, best_value = NONE, none_value
        for k, (activity, a) in enumerate(VALUE_ACTIVITY_CODES):
            p = success[a]
            known = not math.isnan(p)
            value = values[a] if known else None
            if not known:
                item_reasons = [
                    self._text(
                        lang, "not learned from the training data", "学習データにない活動です"
                    )
                ]
            else:
                item_reasons = favoured[k]
                if activity in blocked_activities:
                    item_reasons.append(
                        self._text(
                            lang, "blocked by contact policy", "コンタクトポリシーにより除外"
                        )
                    )
                elif allow_attempt and value > best_value:
                    best, best_value = activity, value
            expected = None if value is None else round(value, 6)
            order_keys.append(-math.inf if expected is None else expected)
            activities.append(
                {
                    "activity": activity,
                    "success_probability": None if not known else round(p, 6),
                    "expected_value": expected,
                    "hint": hints[activity],
                    "reasons": item_reasons,
                }
            )
        # Highest expected value first; a stable sort keeps ties in VALUE_ACTIVITIES order.
        order = sorted(range(len(activities)), key=order_keys.__getitem__, reverse=True)
        if best == NONE:
            reasons.append(
                self._text(
                    lang,
                    "no value activity pays for its extra handle time: resolve effortlessly",
                    "延びる対応時間に見合う価値向上活動がないため、手間なく解決を優先します",
                )
                if allow_attempt
                else self._text(
                    lang,
                    "value attempt not allowed for this contact",
                    "このお問い合わせでは価値向上の提案を行いません",
                )
            )
        return {
            "openness": {
                "score": round(openness, 6),
                "band": band_of(openness, self.bands),
                "attempt": best != NONE,
            },
            "activities": [activities[i] for i in order],
            "suggested_activity": best,
            "expected_value_none": round(none_value, 6),
            "reasons": reasons,
        }

    # ------------------------------------------------------------------ reasons
    def _favoured_phrases(
        self, encoded: list[float], features: Mapping[str, Any], lang: str, success: list[float]
    ) -> list[list[str]]:
        """Per value activity (``VALUE_ACTIVITY_CODES`` order), a new list of phrases naming
        the features whose values favour it over the others (``models.explain``); empty
        without a reason table, and for activities the ranker never learned."""
        if self._reasons is None:
            return [[] for _ in VALUE_CODES]
        favoured = _top_two(self._reasons.value_scores(encoded), VALUE_CODES)
        names = self._feature_names
        phrase_of: dict[int, str] = {}  # activities share features: describe each once
        out: list[list[str]] = []
        for a, top in zip(VALUE_CODES, favoured, strict=True):
            phrases: list[str] = []
            if not math.isnan(success[a]):
                for j in top:
                    phrase = phrase_of.get(j)
                    if phrase is None:
                        name = names[j]
                        phrase = phrase_of[j] = describe_cached(name, features.get(name), lang)
                    phrases.append(phrase)
                if not phrases:
                    phrases.append(
                        self._text(
                            lang,
                            "no feature stands out for this activity",
                            "この活動を特に後押しする要因はありません",
                        )
                    )
            out.append(phrases)
        return out

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
                            lang, "model has no activity ranker", "活動を順位付けしないモデルです"
                        )
                    ],
                }
                for activity in VALUE_ACTIVITIES
            ],
            "suggested_activity": NONE,
            "expected_value_none": 0.0,
            # 受容度: openness as the desk and the dashboard name it.
            "reasons": [self._text(lang, "openness-only model", "受容度のみを予測するモデルです")],
        }

    @staticmethod
    def _text(lang: str, en: str, ja: str) -> str:
        return ja if lang == "ja" else en
