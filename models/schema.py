"""The canonical interaction log: column names, types and the rules a row must obey,
and the named rewards a model can learn from (``Reward``).

The rules are plain data so that the batch loader (pandas, in ``training``) and the
service's request schemas check the same things.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from models.activities import ACTIONS


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "str", "category", "float", "int", "binary", "timestamp"
    minimum: float | None = None
    maximum: float | None = None
    # (0, 1]: propensities are probabilities of what was actually chosen, never 0.
    exclusive_minimum: bool = False
    allowed: tuple[str, ...] | None = None


# Upper bounds the REST API also enforces (service/schemas.py): a batch log must not
# accept a value the service would refuse for the same field (e.g. a tenure of 1e300).
MAX_TENURE_MONTHS = 1200.0  # 100 years
MAX_PRIOR_CONTACTS_30D = 100_000
MAX_HANDLE_TIME_S = 86_400.0  # one day

LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*")


def canonical_language(tag: str) -> str:
    """A BCP 47 language tag in its canonical case: ``JA`` is ``ja``, ``ja_jp`` is
    ``ja-JP``. Tags are case-insensitive; the model's categories and the texts know one
    spelling of each. A value that is no tag is returned as it is."""
    if not LANGUAGE_TAG.fullmatch(tag):
        return tag
    first, *rest = tag.replace("_", "-").split("-")
    parts = [first.lower()]
    for part in rest:
        if len(part) == 2 and part.isalpha():
            parts.append(part.upper())  # region
        elif len(part) == 4 and part.isalpha():
            parts.append(part.title())  # script
        else:
            parts.append(part.lower())
    return "-".join(parts)


# The longest language tag the API takes for a contact (service.schemas.LanguageTag): a
# pool must be able to name any language a contact can carry.
MAX_LANGUAGE_TAG = 35
LANGUAGE_TAG_HINT = "a language tag such as ja, en or ja-JP (BCP 47)"


def language_tag_problem(tag: str) -> str | None:
    """Why ``tag`` is no language tag the API would take (None: it is one), in the
    decision body's words, so a pools file, a log and a request are refused alike."""
    if len(tag) > MAX_LANGUAGE_TAG:
        return f"{LANGUAGE_TAG_HINT} of at most {MAX_LANGUAGE_TAG} characters"
    if not LANGUAGE_TAG.fullmatch(tag):
        return LANGUAGE_TAG_HINT
    return None


# The forms a period's start or end is given in (the reports' API and the CLI): a date,
# or a date-time to the minute, second or microsecond, with an optional Z or offset.
DATE_FORMS = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?"
)
DATE_FORMS_MESSAGE = "must be a date YYYY-MM-DD or a date-time YYYY-MM-DDTHH:MM[:SS][+HH:MM]"


def parse_instant(text: str) -> datetime:
    """``text`` in one of ``DATE_FORMS`` as naive UTC (a time without an offset is UTC);
    ValueError with ``DATE_FORMS_MESSAGE`` otherwise."""
    text = text.strip()
    if not DATE_FORMS.fullmatch(text):
        raise ValueError(DATE_FORMS_MESSAGE)
    moment = datetime.fromisoformat(text)  # "Z" and "+09:00" alike (Python 3.11)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def normal_category(value: str) -> str:
    """A category value (an issue type, a segment, a persona) as the API loads it:
    stripped of surrounding whitespace, in lower case. CRMs send "Complaint", "COMPLAINT"
    or "complaint "; the contact policy, talk tracks and reports know one spelling."""
    return value.strip().lower()


# "101.0": how a whole number reads after pandas made a column of them floats around one
# empty cell (``str(101.0)``), and how bundles trained before ``category_text`` learned it.
WHOLE_NUMBER_AS_FLOAT = re.compile(r"[+-]?\d+\.0")


def category_text(value: object) -> str:
    """A category value (not missing) as text, as a model learns and looks it up: a string
    as it is, a whole number without a fractional part. A store id column with one empty
    cell is read as floats (101.0) while a decision sends 101 or "101": all three are
    "101". Other numbers and flags as ``str`` writes them ("2.5", "True")."""
    kind = type(value)  # the API's str, int and float first, without isinstance
    if kind is str:
        return value
    if kind is int:
        return str(value)
    if kind is float:
        return str(int(value)) if value.is_integer() else str(value)  # type: ignore[attr-defined]
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else str(number)
    return str(value)


def category_key(value: object) -> str:
    """The spelling two values of one category share: ``category_text`` in the normal
    spelling (``normal_category``), a whole number written "101.0" as "101". A model
    answers to it when the exact text is no value it learned, and drift counts by it."""
    normal = normal_category(category_text(value))
    if normal.endswith(".0") and WHOLE_NUMBER_AS_FLOAT.fullmatch(normal):
        return normal[:-2]
    return normal


def primary_language(tag: str) -> str:
    """The primary language subtag, lower-case: ``ja`` of ``ja``, ``JA``, ``ja-JP`` and
    ``ja_jp``. Languages are matched on it: a ja-JP speaker is a Japanese speaker, while
    ``jam`` (Jamaican Creole) is not Japanese though it starts with "ja"."""
    return tag.replace("_", "-").split("-", 1)[0].lower()


COLUMNS: tuple[Column, ...] = (
    Column("interaction_id", "str"),
    Column("customer_id", "str"),
    Column("occurred_at", "timestamp"),
    Column("channel", "category"),
    Column("issue_type", "category"),
    Column("segment", "category"),
    Column("persona", "category"),
    Column("tenure_months", "float", minimum=0.0, maximum=MAX_TENURE_MONTHS),
    Column("switching_effort", "category"),
    Column("prior_contacts_30d", "int", minimum=0, maximum=MAX_PRIOR_CONTACTS_30D),
    Column("sentiment", "float", minimum=-1.0, maximum=1.0),
    Column("language", "category"),
    Column("activity", "category", allowed=ACTIONS),
    Column("propensity", "float", minimum=0.0, maximum=1.0, exclusive_minimum=True),
    Column("agent_id", "str"),
    Column("pool_id", "str"),
    Column("ve_success", "binary"),
    Column("ves_confidence", "int", minimum=1, maximum=7),
    Column("ves_ability", "int", minimum=1, maximum=7),
    Column("accepted", "binary"),
    Column("offered", "binary"),
    Column("handle_time_s", "float", minimum=0.0, maximum=MAX_HANDLE_TIME_S),
    Column("csat", "int", minimum=1, maximum=5),
    Column("retained_60d", "binary"),
)
# The other reward parts (``REWARD_PARTS``): 0/1 like retained_60d and checked wherever a
# log has them (a 2 or a 'yes' must be refused naming row and field, not reach the
# learner), but not columns of the canonical layout above: ``vea export`` writes them
# after it, from customer events.
REWARD_EVENT_COLUMNS: tuple[Column, ...] = (
    Column("retained_30d", "binary"),
    Column("retained_90d", "binary"),
    Column("upgraded", "binary"),
)
COLUMN_BY_NAME: dict[str, Column] = {c.name: c for c in (*COLUMNS, *REWARD_EVENT_COLUMNS)}
# The canonical log's column names in order, and the context among them: what is known
# before the activity is chosen (what a logging policy receives).
LOG_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS)


# The columns only vea's own logs carry (``vea export``), after the canonical ones: read
# back by training, never learned from as features.
VEA_EXPORT_COLUMNS: tuple[str, ...] = (
    "decision_id",
    "model_version",
    "experiment_arm",
    "pool_propensity",
    "openness",
    "degraded",
    "delivered_activity",
    "resolved",
    "retained_30d",
    "retained_90d",
    "upgraded",
    # Revenue of the upgrades (their events' values) in the 60 days after the decision:
    # the value report's net value counts it beside retention.
    "upgrade_revenue_60d",
    # The champion's first choice before exploration/holdout, and a shadow challenger's
    # choice for the same contact (``vea models shadow``), for ``vea evaluate --shadow``.
    "nps",
    "ces",
    "best_activity",
    "shadow_version",
    "shadow_activity",
    # Of those upgrades, how many were sent without a value (they add 0 to the revenue,
    # which is then a lower bound); last, so the columns before keep their places.
    "upgrades_without_value_60d",
    # What the contact policy allowed at the decision (as its answer's contact_policy):
    # 0 when no value attempt was allowed, and the activities it blocked (comma-separated).
    # A policy valued on the log (the promotion gate) is held to them, as it would serve.
    "attempt_allowed",
    "blocked_activities",
    # The pool routing chose, to which ``pool_propensity`` belongs. ``pool_id`` is the
    # pool that handled the contact (the outcome's, as the design's log has it), which
    # can differ (an overflow, a transfer); evaluating routing needs the chosen one.
    "routed_pool_id",
)
CONTEXT_COLUMNS: tuple[str, ...] = LOG_COLUMNS[: LOG_COLUMNS.index("activity")]

# The context a model may learn from. Outcomes, ids and the logged choice are not
# features: they are unknown when a decision is made.
CATEGORICAL_FEATURES: tuple[str, ...] = (
    "channel",
    "issue_type",
    "segment",
    "persona",
    "switching_effort",
    "language",
)
NUMERIC_FEATURES: tuple[str, ...] = ("tenure_months", "prior_contacts_30d", "sentiment")
CONTEXT_FEATURES: tuple[str, ...] = CATEGORICAL_FEATURES + NUMERIC_FEATURES

LABEL = "ve_success"


# ------------------------------------------------------------------- rewards
# What a model learns to raise and the value report reports: one part, or a weighted
# value of several. Each part is a 0/1 column of the log; the retention windows and
# ``upgraded`` come from customer events joined after the contact (``vea export``), and
# are unknown while their window is open.
REWARD_PARTS: tuple[str, ...] = (
    "ve_success",
    "accepted",
    "retained_30d",
    "retained_60d",
    "retained_90d",
    "upgraded",
)
REWARDS: tuple[str, ...] = (*REWARD_PARTS, "weighted")
DEFAULT_REWARD = LABEL


class RewardError(ValueError):
    """A reward that cannot be used, naming the bad part."""


@dataclass(frozen=True)
class Reward:
    """The named reward: ``ve_success`` (default), ``accepted``, a retention window, or
    ``weighted``: ``sum(w * part) / sum(w)``, a value in [0, 1] (so the economics'
    ``value_of_success`` is the worth of a contact scoring on every part).

    ``accepted`` is intent to treat: a contact where nothing was offered counts as not
    accepted (0); an offer whose answer is unknown leaves the reward unknown.
    """

    name: str = DEFAULT_REWARD
    weights: tuple[tuple[str, float], ...] = ()

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.weights) if self.name == "weighted" else (self.name,)

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_REWARD

    @property
    def label(self) -> str:
        """``ve_success``, or ``weighted(ve_success=1,accepted=0.5)``."""
        if self.name != "weighted":
            return self.name
        return "weighted(" + ",".join(f"{p}={w:g}" for p, w in self.weights) + ")"

    def describe(self) -> str:
        if self.name == "weighted":
            total = sum(w for _, w in self.weights)
            terms = " + ".join(f"{w:g} x {p}" for p, w in self.weights)
            return f"({terms}) / {total:g}: a weighted value in [0, 1]"
        if self.name == "accepted":
            return "the customer took up the suggestion (not offered counts as 0)"
        if self.name.startswith("retained_"):
            days = self.name.removeprefix("retained_").removesuffix("d")
            return f"the customer stayed {days} days after the contact (no churn event)"
        if self.name == "upgraded":
            return "the customer upgraded within 90 days of the contact"
        return "value-enhancement success (VES top-2-box on both items, or as reported)"

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "label": self.label,
            "description": self.describe(),
        }
        if self.name == "weighted":
            out["weights"] = dict(self.weights)
        return out

    @classmethod
    def from_dict(cls, data: object) -> Reward:
        """Back from ``to_dict`` (a bundle manifest), or from a name / weights mapping."""
        if data is None:
            return cls()
        if isinstance(data, str):
            return parse_reward(data)
        if isinstance(data, dict) and "name" in data:
            return parse_reward(str(data["name"]), data.get("weights"))
        if isinstance(data, dict):
            return parse_reward("weighted", data)
        raise RewardError(f"reward: expected a name or a mapping of weights, got {data!r}")

    def values(self, columns: Mapping[str, Sequence[float]], n: int) -> np.ndarray:
        """The reward of every row (NaN where unknown) from 0/1 columns (NaN missing)."""
        total = np.zeros(n)
        for part, weight in self.weights or ((self.name, 1.0),):
            total = total + weight * self.part_values(columns, part, n)
        return total / (sum(w for _, w in self.weights) if self.weights else 1.0)

    @staticmethod
    def part_values(columns: Mapping[str, Sequence[float]], part: str, n: int) -> np.ndarray:
        if part not in columns or columns[part] is None:
            raise RewardError(f"reward part {part!r}: the data has no {part!r} column")
        x = _floats(columns[part], n)
        if part == "accepted" and "offered" in columns and columns["offered"] is not None:
            offered = _floats(columns["offered"], n)
            x = np.where(np.isnan(x) & (offered == 0), 0.0, x)  # not offered: not accepted
        return x


def _floats(values: Sequence[float], n: int) -> np.ndarray:
    out = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    if out.shape != (n,):
        raise RewardError(f"reward column has {out.size} values for {n} rows")
    return out


MAX_REWARD_WEIGHT = 1e6


def parse_weights(text: str | Mapping[str, object] | None) -> tuple[tuple[str, float], ...]:
    """``ve_success=1,accepted=0.5,retained_60d=2`` (or a mapping) as validated weights."""
    if text is None or (isinstance(text, str) and not text.strip()):
        raise RewardError(
            "reward weighted needs weights, e.g. ve_success=1,accepted=0.5,retained_60d=2"
        )
    if isinstance(text, Mapping):
        items = [(str(k), v, f"{k}: {v}") for k, v in text.items()]
    else:
        items = []
        for item in str(text).split(","):
            if "=" not in item:
                raise RewardError(f"reward weight {item.strip()!r}: write part=weight")
            part, _, weight = item.partition("=")
            items.append((part.strip(), weight.strip(), item.strip()))
    out: dict[str, float] = {}
    for part, weight, shown in items:
        if part not in REWARD_PARTS:
            raise RewardError(
                f"reward weight {shown!r}: unknown part {part!r}; use one of {list(REWARD_PARTS)}"
            )
        if part in out:
            raise RewardError(f"reward weight {shown!r}: part {part!r} given twice")
        if isinstance(weight, bool):
            raise RewardError(f"reward weight {shown!r}: the weight is not a number")
        try:
            value = float(weight)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise RewardError(f"reward weight {shown!r}: the weight is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise RewardError(f"reward weight {shown!r}: the weight must be a number >= 0")
        if value > MAX_REWARD_WEIGHT:
            # Weights are relative; two near the float limit add up to infinity, and every
            # reward would then read 0.
            raise RewardError(
                f"reward weight {shown!r}: at most {MAX_REWARD_WEIGHT:g} (weights are "
                "relative: 2 and 1 weigh as 2000 and 1000)"
            )
        out[part] = value
    if not any(w > 0 for w in out.values()):
        raise RewardError("reward weights: at least one weight must be above 0")
    return tuple((p, w) for p, w in out.items() if w > 0)


def parse_reward(name: str | None, weights: str | Mapping[str, object] | None = None) -> Reward:
    """The reward named on the command line, in a spec or a query; RewardError if bad."""
    name = (name or DEFAULT_REWARD).strip()
    if name not in REWARDS:
        raise RewardError(f"unknown reward {name!r}; use one of {list(REWARDS)}")
    if name != "weighted":
        if weights is not None and not (isinstance(weights, str) and not weights.strip()):
            raise RewardError(f"reward weights are only for --reward weighted, not {name!r}")
        return Reward(name)
    return Reward("weighted", parse_weights(weights))
