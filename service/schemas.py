"""Marshmallow schemas: the single source of request validation, response shape and the
OpenAPI document. Unknown fields are refused (422) so a client's typo never silently
drops information."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import marshmallow as ma
import orjson
from marshmallow import fields, pre_load, validate, validates_schema

from models.activities import ACTIONS, CHANNELS, VALUE_ACTIVITIES
from models.opportunities import DEFAULT_SITUATION, SITUATION_FEATURES, parse_situation
from models.opportunities import MIN_ATTEMPTS as ORGANIC_MIN_ATTEMPTS
from models.pools import CONTROL, ID_RULES, MAX_ID, customer_id_problem, id_problem
from models.pools import MAX_NAME as MAX_POOL_NAME
from models.pools import MEMBERSHIPS as POOL_MEMBERSHIPS
from models.pools import NAME_LANGUAGE as POOL_NAME_LANGUAGE
from models.schema import (
    DATE_FORMS,
    DATE_FORMS_MESSAGE,
    LANGUAGE_TAG,
    LANGUAGE_TAG_HINT,
    MAX_HANDLE_TIME_S,
    MAX_LANGUAGE_TAG,
    MAX_PRIOR_CONTACTS_30D,
    MAX_TENURE_MONTHS,
    REWARDS,
    RewardError,
    canonical_language,
    normal_category,
    parse_reward,
)
from service.audit import DEFAULT_PAGE as AUDIT_PAGE
from service.audit import MAX_PAGE as AUDIT_MAX_PAGE
from service.audit import decode_cursor
from service.export import FRAME_COLUMNS, MAX_EXTRA_FEATURES
from service.fast_load import DEFER, compile_loader

EVENT_TYPES = ("renewed", "churned", "upgraded", "downgraded", "retained")


DATE_RANGE_MESSAGE = "must be a date between 1970 and 2199"


def _plausible_time(value: datetime) -> None:
    """Times are refused outside 1970-2199: anything else is a client bug, and a year-1 or
    year-9999 time overflows the look-back arithmetic (history, events, reports) into a
    500 (found by the API fuzzer)."""
    if not 1970 <= value.year < 2200:
        raise ma.ValidationError(DATE_RANGE_MESSAGE)


class MillisecondTime(fields.AwareDateTime):
    """An aware time kept to the millisecond, the precision every answer shows it with
    (``service.db.iso_utc``): a time read back from an answer and sent again is the
    same time. Kept to the microsecond, ``...00.123456Z`` was shown as ``...00.123Z``,
    and that time sent back was a 409 saying ``...00.123Z is already recorded``."""

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


CLOCK_SKEW = timedelta(hours=1)  # between a caller's clock and the service's


def _happened(value: datetime) -> None:
    """An outcome or event is a fact: it cannot lie ahead (beyond clocks' skew). A churn
    dated next year would mark the customer lost before it happened."""
    _plausible_time(value)
    if value.tzinfo is not None and value > datetime.now(UTC) + CLOCK_SKEW:
        raise ma.ValidationError("must not be in the future")


def has_control_characters(value: object) -> bool:
    """Whether any string in ``value`` holds a control character other than tab and line
    feed (``models.pools.CONTROL``): PostgreSQL text cannot hold NUL, and a lone carriage
    return splits a CSV row for most readers (vea export writes CSV)."""
    # Every body is checked once per schema it nests (three walks of a decision): one
    # dump first, as JSON holds each of these characters escaped (a backslash) or, DEL,
    # raw. Most bodies have neither and are done; the rest, and anything JSON cannot
    # hold (keys that are no strings, huge integers), are walked.
    try:
        dumped = orjson.dumps(value)
    except TypeError:
        pass
    else:
        if b"\\" not in dumped and b"\x7f" not in dumped:
            return False
    # A walk with its own stack, not recursion: a body nested a few hundred levels deep
    # (orjson reads up to 1024) exhausted Python's stack here, a 500 instead of a 422.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if CONTROL.search(item) is not None:
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class StrictBoolean(fields.Boolean):
    """``true`` or ``false`` only: marshmallow's Boolean also reads "yes", "on", 1 and
    "false" as booleans, which a caller's bug would then store as fact."""

    fast_load_as = fields.Boolean  # the fast path takes exact booleans only anyway

    def _deserialize(self, value, attr, data, **kwargs):
        if value is True or value is False:
            return value
        raise self.make_error("invalid", input=value)


def _json_number(field: fields.Number, value: Any) -> None:
    # A JSON number, not a string of one nor a boolean (which Python counts as 0 and 1).
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise field.make_error("invalid", input=value)


class StrictFloat(fields.Float):
    """A JSON number only (marshmallow's Float also reads "3.5" and true)."""

    fast_load_as = fields.Float

    def _deserialize(self, value, attr, data, **kwargs):
        _json_number(self, value)
        return super()._deserialize(value, attr, data, **kwargs)


class StrictInteger(fields.Integer):
    """A whole JSON number only (marshmallow's Integer also reads "3", 3.0 and true)."""

    fast_load_as = fields.Integer

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **{k: v for k, v in kwargs.items() if k != "strict"})

    def _deserialize(self, value, attr, data, **kwargs):
        _json_number(self, value)
        return super()._deserialize(value, attr, data, **kwargs)


@functools.lru_cache(maxsize=1024)
def _language_tag(value: str) -> str | None:
    # A handful of tags arrive on every decision: checked and canonicalised once each.
    if 2 <= len(value) <= MAX_LANGUAGE_TAG and LANGUAGE_TAG.fullmatch(value):
        return canonical_language(value)
    return None


class LanguageTag(fields.String):
    """A BCP 47 tag (``ja``, ``en-US``), loaded in its canonical case: "JA" and "ja_jp"
    are "ja" and "ja-JP" (``models.schema.canonical_language``)."""

    default_error_messages = {"tag": LANGUAGE_TAG_HINT}

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": LANGUAGE_TAG.pattern, "minLength": 2, "maxLength": MAX_LANGUAGE_TAG}
        super().__init__(**{**kwargs, "metadata": {**metadata, **kwargs.get("metadata", {})}})

    def _deserialize(self, value, attr, data, **kwargs):
        tag = _language_tag(super()._deserialize(value, attr, data, **kwargs))
        if tag is None:
            raise self.make_error("tag")
        return tag

    def fast_load(self, value: Any) -> Any:
        """What ``_deserialize`` loads from a valid tag, else DEFER (service.fast_load)."""
        tag = _language_tag(value) if type(value) is str else None
        return DEFER if tag is None else tag


class Schema(ma.Schema):
    class Meta:
        ordered = True

    def load(self, data, *, many=None, partial=None, unknown=None):
        # Plain calls (every request body) try the fast path compiled from this very
        # schema first (service.fast_load); it defers to marshmallow for anything else.
        if many is None and partial is None and unknown is None:
            fast = self.__dict__.get("_fast_load", DEFER)
            if fast is DEFER:
                fast = self._fast_load = compile_loader(self)
            if fast is not None:
                loaded = fast(data)
                if loaded is not DEFER:
                    return loaded
        return super().load(data, many=many, partial=partial, unknown=unknown)

    @pre_load
    def _refuse_control(self, data, **_kwargs):
        # Refused as bad input (422) rather than failing at insert time or in an export.
        if has_control_characters(data):
            raise ma.ValidationError(
                "strings must not contain control characters (NUL, carriage return, ...)"
            )
        return data


def _plain_id(value: str, rule=id_problem) -> None:
    """The rule of an id (``models.pools.id_problem``, which pool members and offline
    logs follow too); its length is the field's ``Length`` validator's to tell."""
    problem = rule(value) if 1 <= len(value) <= MAX_ID else None
    if problem:
        raise ma.ValidationError(problem)


def _customer_id(value: str) -> None:
    _plain_id(value, customer_id_problem)


def _id_field(description: str, *, customer: bool = False, **kwargs) -> fields.String:
    rules = f"{ID_RULES}, no empty part between '/'" if customer else ID_RULES
    return fields.String(
        validate=[validate.Length(min=1, max=MAX_ID), _customer_id if customer else _plain_id],
        metadata={"description": f"{description}; {rules}"},
        **kwargs,
    )


class _Category(fields.String):
    """A category id (an issue type, a segment, a persona), loaded stripped of surrounding
    whitespace and in lower case: CRMs send "Complaint", "COMPLAINT" or "complaint ", and
    the contact policy, the model's vocabulary, talk tracks and reports know "complaint"
    only (an angry "Complaint" was offered a value attempt)."""

    default_error_messages = {"blank": "must not be blank"}

    def _deserialize(self, value, attr, data, **kwargs):
        category = normal_category(super()._deserialize(value, attr, data, **kwargs))
        if not category:
            raise self.make_error("blank")
        return category

    def fast_load(self, value: Any) -> Any:
        """What ``_deserialize`` loads from a string, else DEFER (service.fast_load); a
        blank one fails the field's Length and defers to marshmallow for its message."""
        return normal_category(value) if type(value) is str else DEFER


def _category(description: str, **kwargs) -> fields.String:
    return _Category(
        validate=validate.Length(min=1, max=64),
        allow_none=True,
        metadata={"description": f"{description}; read in lower case, spaces around removed"},
        **kwargs,
    )


# ----------------------------------------------------------------- decisions
class CustomerSchema(Schema):
    customer_id = _id_field(
        "pseudonymous customer id (history and continuity)", customer=True, required=True
    )
    segment = _category("e.g. consumer, premium, small_business, enterprise")
    persona = _category("optional persona")
    tenure_months = StrictFloat(
        allow_none=True,
        allow_nan=False,
        validate=validate.Range(min=0, max=MAX_TENURE_MONTHS),
        metadata={"description": "time since purchase, months"},
    )
    switching_effort = fields.String(allow_none=True, validate=validate.OneOf(["low", "high"]))
    prior_contacts_30d = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_PRIOR_CONTACTS_30D),
        metadata={"description": "computed from the service's history when omitted"},
    )
    language = LanguageTag(allow_none=True, metadata={"description": "the customer's language"})


class ContactSchema(Schema):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    issue_type = _category(
        "inquiry, how_to, billing, technical, order_change, complaint, cancellation, ..."
        " (omit while unknown: a continued contact inherits the earlier issue)"
    )
    sentiment = StrictFloat(
        allow_none=True, allow_nan=False, validate=validate.Range(min=-1.0, max=1.0)
    )
    language = LanguageTag(
        allow_none=True,
        metadata={"description": "agent-facing language of hints and reasons (ja, en)"},
    )
    occurred_at = fields.AwareDateTime(
        allow_none=True,
        default_timezone=None,
        validate=_plausible_time,
        metadata={"description": "ISO 8601 with offset; defaults to the time of the request"},
    )


def _validate_extra(values: dict) -> None:
    if len(values) > MAX_EXTRA_FEATURES:
        raise ma.ValidationError(f"at most {MAX_EXTRA_FEATURES} extra features")
    for name, value in values.items():
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            raise ma.ValidationError("feature names are 1-64 characters")
        if name in FRAME_COLUMNS:
            # Stored, it was a second column of that name in every report of its period.
            raise ma.ValidationError(
                f"{name}: a column of vea's own log, not an extra feature (the customer's "
                "and the contact's facts go in customer and contact; rename an extra feature)"
            )
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ma.ValidationError(f"{name}: a feature is a string, number, boolean or null")
        if isinstance(value, str) and len(value) > 256:
            raise ma.ValidationError(f"{name}: at most 256 characters")


class DecisionRequestSchema(Schema):
    interaction_id = _id_field("unique per interaction; the idempotency key", required=True)
    customer = fields.Nested(CustomerSchema, required=True)
    contact = fields.Nested(ContactSchema, required=True)
    features = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(allow_none=True),
        load_default=dict,
        validate=_validate_extra,
        metadata={
            "description": (
                "extra features the model was trained with (optional): at most "
                f"{MAX_EXTRA_FEATURES}, named 1-64 characters, none named as a column of "
                "vea's own log (segment, experiment_arm, decision_id, ...)"
            )
        },
    )


class OpennessSchema(Schema):
    score = fields.Float(required=True, metadata={"description": "P(value conversation lands)"})
    band = fields.String(required=True, validate=validate.OneOf(["low", "medium", "high"]))
    attempt = fields.Boolean(required=True)


class ActivitySchema(Schema):
    activity = fields.String(required=True, validate=validate.OneOf(VALUE_ACTIVITIES))
    success_probability = fields.Float(
        allow_none=True, metadata={"description": "null if the model never learned this activity"}
    )
    expected_value = fields.Float(allow_none=True)
    hint = fields.String(required=True)
    reasons = fields.List(fields.String(), required=True)


class RouteOptionSchema(Schema):
    pool = fields.String(required=True)
    expected_value = fields.Float(
        allow_none=True,
        metadata={"description": "value x p x proficiency lift - handle cost - wait cost"},
    )
    lift = fields.Float(required=True, metadata={"description": "pool members' proficiency"})
    expected_wait_s = fields.Float(allow_none=True, metadata={"description": "null: unknown"})
    availability = fields.String(
        validate=validate.OneOf(["fresh", "stale", "unknown", "unstaffed"]),
        metadata={
            "description": "the pool's availability report: fresh, stale (ignored), unknown "
            "(none), or unstaffed (fresh, agents_staffed 0: never routed to, no fallback)"
        },
    )
    within_limit = fields.Boolean(
        metadata={"description": "expected wait within the limit (false when unstaffed)"}
    )


class RouteContentSchema(Schema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    language = fields.String(required=True)


class RouteSchema(Schema):
    pool = fields.String(
        required=True, metadata={"description": "agent pool, or digital_content (self-service)"}
    )
    pool_name = fields.String(
        allow_none=True,
        metadata={
            "description": "the pool's display name in the contact's language, as the reason "
            "names it (the pools config's name, else its English name, else the id); null "
            "for digital_content"
        },
    )
    reason = fields.String(required=True)
    fallbacks = fields.List(
        fields.String(),
        required=True,
        metadata={
            "description": "next pools, general last (no unstaffed pool: general neither "
            "when its report says 0 agents staffed)"
        },
    )
    activity = fields.String(
        validate=validate.OneOf(ACTIONS),
        metadata={"description": "activity for this pool (lighter or none on a capacity fallback)"},
    )
    expected_value = fields.Float(allow_none=True)
    expected_wait_s = fields.Float(allow_none=True)
    ranked = fields.List(
        fields.Nested(RouteOptionSchema),
        metadata={"description": "every eligible pool, best first (unstaffed pools last)"},
    )
    content = fields.Nested(
        RouteContentSchema,
        allow_none=True,
        metadata={"description": "self-service: the digital content in the customer's language"},
    )
    propensity = fields.Float(
        metadata={
            "description": "probability this pool was chosen: 1 unless drawn among near-equal "
            "pools (pool exploration; logged as pool_propensity)"
        }
    )
    pool_probabilities = fields.Dict(
        keys=fields.String(),
        values=fields.Float(),
        metadata={"description": "the distribution the pool was drawn from"},
    )


class ContactPolicySchema(Schema):
    allow_attempt = fields.Boolean(required=True)
    blocked_activities = fields.List(fields.String(), required=True)
    reasons = fields.List(fields.String(), required=True)


class EarlierOutcomeSchema(Schema):
    offered = fields.Boolean(allow_none=True)
    accepted = fields.Boolean(allow_none=True)
    ve_success = fields.Boolean(allow_none=True)
    resolved = fields.Boolean(allow_none=True)


class ContinuationSchema(Schema):
    decision_id = fields.String(required=True)
    interaction_id = fields.String(required=True)
    occurred_at = fields.String(required=True)
    channel = fields.String(allow_none=True)
    issue_type = fields.String(allow_none=True)
    activity = fields.String(required=True, metadata={"description": "activity suggested then"})
    outcome = fields.Nested(EarlierOutcomeSchema, allow_none=True)


class DecisionContextSchema(Schema):
    prior_contacts_30d = fields.Integer(required=True)
    prior_contacts_source = fields.String(
        validate=validate.OneOf(["request", "history", "unknown"])
    )
    issue_type_source = fields.String(
        validate=validate.OneOf(["request", "continuation", "unknown"])
    )
    occurred_at = fields.String(
        metadata={
            "description": "the contact's time as taken (UTC): the request's, or the time "
            "of the request when it gave none or a later one"
        }
    )


class DecisionSchema(Schema):
    decision_id = fields.String(required=True)
    interaction_id = fields.String(required=True)
    model_version = fields.String(required=True)
    openness = fields.Nested(OpennessSchema, required=True)
    activities = fields.List(fields.Nested(ActivitySchema), required=True)
    suggested_activity = fields.String(required=True, validate=validate.OneOf(ACTIONS))
    route = fields.Nested(RouteSchema, required=True)
    propensity = fields.Float(
        required=True, metadata={"description": "probability the policy chose this activity"}
    )
    experiment_arm = fields.String(required=True, validate=validate.OneOf(["treatment", "holdout"]))
    degraded = fields.Boolean(required=True)
    reasons = fields.List(fields.String(), required=True)
    contact_policy = fields.Nested(ContactPolicySchema, required=True)
    continuation = fields.Nested(ContinuationSchema, allow_none=True)
    context = fields.Nested(DecisionContextSchema, required=True)
    stored = fields.Boolean(
        required=True, metadata={"description": "false only when the database was unreachable"}
    )
    created_at = fields.String(required=True)


# ------------------------------------------------------------------ outcomes
class OutcomeRequestSchema(Schema):
    activity = fields.String(
        validate=validate.OneOf(ACTIONS),
        metadata={"description": "activity actually offered; defaults to the suggested one"},
    )
    offered = StrictBoolean(
        required=True, metadata={"description": "the agent delivered the value activity"}
    )
    accepted = StrictBoolean(allow_none=True, metadata={"description": "the customer engaged"})
    ves_confidence = StrictInteger(allow_none=True, validate=validate.Range(1, 7))
    ves_ability = StrictInteger(allow_none=True, validate=validate.Range(1, 7))
    ve_success = StrictBoolean(
        allow_none=True,
        metadata={"description": "defaults to VES top-2-box (6-7) on both items when given"},
    )
    resolved = StrictBoolean(allow_none=True)
    handle_time_s = StrictFloat(
        allow_none=True, allow_nan=False, validate=validate.Range(min=0, max=MAX_HANDLE_TIME_S)
    )
    csat = StrictInteger(allow_none=True, validate=validate.Range(1, 5))
    nps = StrictInteger(
        allow_none=True,
        validate=validate.Range(0, 10),
        metadata={"description": "likelihood to recommend (0-10), if surveyed"},
    )
    ces = StrictInteger(
        allow_none=True,
        validate=validate.Range(1, 7),
        metadata={"description": "customer effort score (1 very easy - 7 very hard), if surveyed"},
    )
    agent_id = _id_field("who handled the contact (pool proficiency)", allow_none=True)
    # The id rules (no invisible characters or padding: a look-alike of a pool would be
    # a pool of its own in the reports), not the pools file's pattern: a platform may
    # report its own pool names, which the previous release stored.
    pool_id = fields.String(
        allow_none=True,
        validate=[validate.Length(min=1, max=64), _plain_id],
        metadata={"description": f"the pool that handled the contact; {ID_RULES}"},
    )
    occurred_at = MillisecondTime(allow_none=True, validate=_happened)

    @validates_schema
    def _consistent(self, data: dict, **_kwargs) -> None:
        if data.get("accepted") and not data.get("offered"):
            raise ma.ValidationError("cannot be accepted when nothing was offered", "accepted")
        if data.get("activity") == "none" and data.get("offered"):
            raise ma.ValidationError("offered must be false for activity none", "offered")


class OutcomeSchema(Schema):
    decision_id = fields.String(required=True)
    activity = fields.String(required=True)
    offered = fields.Boolean(required=True)
    accepted = fields.Boolean(allow_none=True)
    ve_success = fields.Boolean(allow_none=True)
    ves_confidence = fields.Integer(allow_none=True)
    ves_ability = fields.Integer(allow_none=True)
    resolved = fields.Boolean(allow_none=True)
    handle_time_s = fields.Float(allow_none=True)
    csat = fields.Integer(allow_none=True)
    nps = fields.Integer(allow_none=True)
    ces = fields.Integer(allow_none=True)
    agent_id = fields.String(allow_none=True)
    pool_id = fields.String(allow_none=True)
    occurred_at = fields.String(required=True)
    recorded_at = fields.String(required=True)


# ------------------------------------------------------------------- surveys
SURVEY_ANSWERS = ("ves_confidence", "ves_ability", "csat", "nps", "ces")


class SurveyRequestSchema(Schema):
    """Answers of the post-contact survey, sent by the survey system (any time after the
    contact, before or after the agent's outcome)."""

    survey_id = _id_field("the survey system's id of this response", allow_none=True)
    answered_at = MillisecondTime(
        allow_none=True,
        validate=_happened,
        metadata={"description": "when the customer answered; not before the contact"},
    )
    ves_confidence = StrictInteger(
        allow_none=True,
        validate=validate.Range(1, 7),
        metadata={"description": "VES: more confident in the purchase decision (1-7)"},
    )
    ves_ability = StrictInteger(
        allow_none=True,
        validate=validate.Range(1, 7),
        metadata={"description": "VES: helped get more value from the product (1-7)"},
    )
    csat = StrictInteger(allow_none=True, validate=validate.Range(1, 5))
    nps = StrictInteger(
        allow_none=True,
        validate=validate.Range(0, 10),
        metadata={"description": "likelihood to recommend (0-10)"},
    )
    ces = StrictInteger(
        allow_none=True,
        validate=validate.Range(1, 7),
        metadata={"description": "customer effort score (1 very easy - 7 very hard)"},
    )

    @validates_schema
    def _some_answer(self, data: dict, **_kwargs) -> None:
        if all(data.get(name) is None for name in SURVEY_ANSWERS):
            raise ma.ValidationError(
                f"at least one answer is required: {', '.join(SURVEY_ANSWERS)}"
            )


class SurveySchema(Schema):
    decision_id = fields.String(required=True)
    survey_id = fields.String(allow_none=True)
    answered_at = fields.String(allow_none=True)
    ves_confidence = fields.Integer(allow_none=True)
    ves_ability = fields.Integer(allow_none=True)
    csat = fields.Integer(allow_none=True)
    nps = fields.Integer(allow_none=True)
    ces = fields.Integer(allow_none=True)
    recorded_at = fields.String(
        required=True, metadata={"description": "when the first answers were stored"}
    )
    updated_at = fields.String(
        required=True, metadata={"description": "when answers were last added"}
    )
    outcome_recorded = fields.Boolean(
        required=True,
        metadata={
            "description": "the agent's outcome is recorded: the answers are in it and count "
            "in exports and reports; until then they are kept and counted once it is"
        },
    )
    ve_success = fields.Boolean(
        allow_none=True,
        required=True,
        metadata={
            "description": "the outcome's ve_success with these answers (VES top-2-box on "
            "both items unless the outcome set it); null without an outcome or both items"
        },
    )


class StoredDecisionSchema(Schema):
    decision = fields.Nested(
        DecisionSchema,
        required=True,
        metadata={"description": "the answer as last given for the interaction"},
    )
    outcome = fields.Nested(
        OutcomeSchema,
        allow_none=True,
        required=True,
        metadata={
            "description": "the recorded outcome, with the survey's answers once both exist; "
            "null while none is recorded"
        },
    )
    survey = fields.Nested(
        SurveySchema,
        allow_none=True,
        required=True,
        metadata={"description": "the survey's answers as received; null while none is"},
    )


class DecisionPathSchema(Schema):
    decision_id = fields.String(required=True, validate=validate.Length(min=1, max=32))


# ------------------------------------------------------------------- events
class CustomerPathSchema(Schema):
    # As in a decision body: the events are joined to the decisions by this id.
    customer_id = _id_field(
        "pseudonymous customer id, as in the decisions", customer=True, required=True
    )


class CustomerLookupPathSchema(Schema):
    # Reading or erasing takes any id that may be stored (also one stored before ids
    # had to be NFC without invisible characters), as `vea db erase-customer` does.
    customer_id = fields.String(
        required=True,
        validate=validate.Length(min=1, max=128),
        metadata={"description": "pseudonymous customer id, as stored"},
    )


MAX_EVENT_VALUE = 1e12


class EventRequestSchema(Schema):
    event_id = _id_field("caller's id of the event; repeats are idempotent")
    type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    occurred_at = MillisecondTime(allow_none=True, validate=_happened)
    value = StrictFloat(
        allow_none=True,
        allow_nan=False,
        # Sums of values near the float limit (1.7e308) overflow to infinity, which the
        # report's finite-only figures then drop without a word.
        validate=validate.Range(min=-MAX_EVENT_VALUE, max=MAX_EVENT_VALUE),
        metadata={"description": "e.g. revenue of an upgrade"},
    )


class ErasedCountsSchema(Schema):
    decisions = fields.Integer(required=True)
    outcomes = fields.Integer(required=True)
    surveys = fields.Integer(required=True)
    events = fields.Integer(required=True)


class ErasureSchema(Schema):
    customer_id = fields.String(required=True)
    deleted = fields.Nested(
        ErasedCountsSchema,
        required=True,
        metadata={"description": "records deleted now; all zero when nothing was stored"},
    )


class CustomerDecisionSchema(StoredDecisionSchema):
    occurred_at = fields.String(required=True, metadata={"description": "the contact's time"})
    features = fields.Dict(
        required=True, metadata={"description": "what the decision was made on, as stored"}
    )


class StoredEventSchema(Schema):
    id = fields.Integer(required=True)
    event_id = fields.String(allow_none=True)
    type = fields.String(required=True)
    occurred_at = fields.String(required=True)
    value = fields.Float(allow_none=True)
    recorded_at = fields.String(required=True)


class CustomerRecordsSchema(Schema):
    customer_id = fields.String(required=True)
    decisions = fields.List(fields.Nested(CustomerDecisionSchema), required=True)
    events = fields.List(fields.Nested(StoredEventSchema), required=True)


class EventSchema(Schema):
    id = fields.Integer(required=True)
    event_id = fields.String(allow_none=True)
    customer_id = fields.String(required=True)
    type = fields.String(required=True)
    occurred_at = fields.String(required=True)
    value = fields.Float(allow_none=True)
    recorded_at = fields.String(required=True)
    follows_decisions = fields.Integer(
        required=True,
        metadata={
            "description": (
                "decisions stored for this customer in the 90 days up to the event's "
                "occurred_at, counted when this answer is given (a replay of the event "
                "counts again, decisions stored since included). 0 (no decision yet, or the "
                "event arrived before its decisions) is not an error: the event is kept "
                "and joined at export time to every decision it follows, whatever the "
                "order in which decisions and events arrived"
            )
        },
    )


# ------------------------------------------------------------------- models
class ModelVersionSchema(Schema):
    version = fields.String(required=True)
    created_at = fields.String(allow_none=True)
    learner = fields.String(allow_none=True)
    training_rows = fields.Integer(allow_none=True)
    reward = fields.String(allow_none=True, metadata={"description": "what the model learned"})
    data_fingerprint = fields.String(allow_none=True)
    metrics = fields.Dict()
    is_champion = fields.Boolean(required=True)
    broken = fields.String(metadata={"description": "why the bundle cannot be read"})
    legacy = fields.String(
        metadata={
            "description": "why the manifest is not covered by a checksum (a bundle written "
            "before bundles carried one: its model files are verified, its manifest not)"
        }
    )


class ServingSchema(Schema):
    version = fields.String(allow_none=True)
    degraded = fields.Boolean(required=True)
    reason = fields.String(allow_none=True)
    warning = fields.String(allow_none=True)


class ShadowStatusSchema(Schema):
    version = fields.String(
        allow_none=True, metadata={"description": "the shadow this worker runs, if any"}
    )
    problem = fields.String(allow_none=True, metadata={"description": "why it does not run"})


class ModelsSchema(Schema):
    champion = fields.String(allow_none=True)
    shadow = fields.String(
        allow_none=True, metadata={"description": "the registry's shadow challenger"}
    )
    serving = fields.Nested(ServingSchema, required=True)
    shadow_serving = fields.Nested(ShadowStatusSchema, required=True)
    versions = fields.List(fields.Nested(ModelVersionSchema), required=True)


class PromoteRequestSchema(Schema):
    reason = fields.String(load_default="", validate=validate.Length(max=500))
    force = StrictBoolean(
        load_default=False, metadata={"description": "recorded in the history: gate overridden"}
    )


class RollbackRequestSchema(Schema):
    reason = fields.String(load_default="", validate=validate.Length(max=500))


class ChampionSchema(Schema):
    champion = fields.String(required=True)
    previous = fields.String(allow_none=True)
    serving = fields.Nested(ServingSchema, required=True)
    extra_features = fields.List(
        fields.String(),
        metadata={
            "description": "features the champion reads beyond the canonical contact: a "
            "decision must send them in `features`, else the model sees missing values"
        },
    )


class ShadowSchema(Schema):
    shadow = fields.String(allow_none=True, metadata={"description": "null: no shadow"})
    previous = fields.String(allow_none=True)
    champion = fields.String(allow_none=True)


class ModelPathSchema(Schema):
    version = fields.String(required=True, validate=validate.Length(min=1, max=128))


# -------------------------------------------------------------------- pools
def _names(values, description: str, **kwargs) -> fields.List:
    return fields.List(
        fields.String(validate=values),
        validate=validate.Length(min=1, max=1000),
        metadata={"description": description},
        **kwargs,
    )


class PoolSchema(Schema):
    id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.Dict(
        keys=fields.String(validate=validate.Regexp(POOL_NAME_LANGUAGE.pattern)),
        values=fields.String(validate=validate.Length(min=1, max=MAX_POOL_NAME)),
        validate=validate.Length(min=1, max=50),
        metadata={
            "description": "display name per language code, e.g. {en: General, ja: 一般窓口}; "
            "pages in another language show the English one, without a name the id"
        },
    )
    description = fields.String(validate=validate.Length(max=500))
    activities = fields.List(
        fields.String(validate=validate.OneOf(VALUE_ACTIVITIES)),
        load_default=list,
        metadata={
            "description": "value activities the pool serves (general: empty, see all_activities)"
        },
    )
    # Accepted so that a GET answer can be PUT back; only general may (and does) say true.
    all_activities = StrictBoolean(
        metadata={"description": "true for general alone: it takes every activity"}
    )
    # Validated and canonicalised as a contact's tag is, so a pool can name any tag a
    # contact may carry and `JA_jp` is stored as the `ja-JP` that contacts arrive with.
    languages = fields.List(
        LanguageTag(),
        validate=validate.Length(min=1, max=1000),
        metadata={"description": "language tags, e.g. [ja, en-US]; omitted: every language"},
    )
    channels = _names(validate.OneOf(CHANNELS), "omitted: every assisted channel")
    segments = _names(validate.Length(min=1, max=64), "e.g. [enterprise]; omitted: every one")
    membership = fields.String(
        validate=validate.OneOf(POOL_MEMBERSHIPS),
        metadata={
            "description": "proficiency: members are set by the rebuild; all_agents: general "
            "alone, which every agent answers (it lists no members)"
        },
    )
    members = fields.List(
        fields.String(validate=validate.Length(min=1, max=128)),
        validate=validate.Length(max=10_000),
        load_default=list,
    )
    capacity = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=100_000),
        metadata={"description": "agents who take contacts at once (estimates waits)"},
    )
    lift = fields.Dict(
        keys=fields.String(validate=validate.OneOf(VALUE_ACTIVITIES)),
        values=StrictFloat(
            allow_nan=False, validate=validate.Range(min=0, max=5, min_inclusive=False)
        ),
        metadata={"description": "members' proficiency per activity (set by the rebuild)"},
    )


class PoolAnswerSchema(PoolSchema):
    """A pool as answers show it: what it takes and who answers it always said."""

    all_activities = fields.Boolean(
        required=True,
        dump_default=False,
        metadata={"description": "true for general alone: it takes every activity"},
    )
    membership = fields.String(
        required=True,
        validate=validate.OneOf(POOL_MEMBERSHIPS),
        metadata={
            "description": "static (members listed), proficiency (members set by the "
            "rebuild) or all_agents (general: every agent answers it, members is empty)"
        },
    )


class PoolsConfigSchema(Schema):
    pools = fields.List(
        fields.Nested(PoolSchema), required=True, validate=validate.Length(min=1, max=200)
    )


class AvailabilityRequestSchema(Schema):
    agents_free = StrictInteger(allow_none=True, validate=validate.Range(min=0, max=100_000))
    queue_length = StrictInteger(allow_none=True, validate=validate.Range(min=0, max=1_000_000))
    expected_wait_s = StrictFloat(
        allow_none=True, allow_nan=False, validate=validate.Range(min=0, max=86_400)
    )
    agents_staffed = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=0, max=100_000),
        metadata={
            "description": "agents logged in to the pool's queue, busy or free: without "
            "expected_wait_s the wait is estimated as (queue_length + 1) x mean handle time "
            "/ agents_staffed. 0 means nobody is logged in (a night shift, a closed site): "
            "while the report is fresh the pool is unstaffed, never routed to nor listed as "
            "a fallback, whatever else the report says. Absent or null: not reported, the "
            "pool's capacity stands in for it, else its members, else 1"
        },
    )

    @validates_schema
    def _something(self, data: dict, **_kwargs) -> None:
        # agents_staffed alone is a report too: {"agents_staffed": 0} closes the pool.
        given = ("agents_free", "queue_length", "expected_wait_s", "agents_staffed")
        if all(data.get(k) is None for k in given):
            raise ma.ValidationError(f"give at least one of {', '.join(given)}")
        free, staffed = data.get("agents_free"), data.get("agents_staffed")
        if free is not None and staffed is not None and free > staffed:
            # A free agent is a logged-in one: which of the two is wrong cannot be told,
            # and read either way the pool would be routed to wrongly.
            raise ma.ValidationError(
                f"agents_free ({free}) cannot exceed agents_staffed ({staffed}): free agents "
                "are logged in",
                "agents_free",
            )


class AvailabilitySchema(Schema):
    pool_id = fields.String(required=True)
    agents_free = fields.Integer(allow_none=True)
    queue_length = fields.Integer(allow_none=True)
    expected_wait_s = fields.Float(allow_none=True)
    agents_staffed = fields.Integer(allow_none=True)
    reported_at = fields.String(required=True)
    expires_at = fields.String(
        required=True, metadata={"description": "after this the report is ignored (stale)"}
    )
    stale = fields.Boolean()


class ProficiencySchema(Schema):
    agent_id = fields.String(required=True)
    activity = fields.String(required=True)
    contacts = fields.Integer(required=True)
    observed = fields.Float(required=True, metadata={"description": "successes"})
    expected = fields.Float(required=True, metadata={"description": "model-expected successes"})
    estimate = fields.Float(required=True, metadata={"description": "shrunk O/E (1 = average)"})
    low = fields.Float(required=True, metadata={"description": "90% interval"})
    high = fields.Float(required=True)
    qualified = fields.Boolean(required=True)


class PoolsSchema(Schema):
    source = fields.String(required=True, validate=validate.OneOf(["file", "database"]))
    updated_at = fields.String(allow_none=True)
    updated_by = fields.String(allow_none=True)
    pools = fields.List(fields.Nested(PoolAnswerSchema), required=True)
    availability = fields.List(fields.Nested(AvailabilitySchema), required=True)
    proficiency = fields.List(fields.Nested(ProficiencySchema), required=True)


class PoolPathSchema(Schema):
    pool = fields.String(required=True, validate=validate.Length(min=1, max=64))


class RebuildRequestSchema(Schema):
    dry_run = StrictBoolean(load_default=False)
    min_contacts = StrictInteger(validate=validate.Range(min=1, max=1_000_000))


class RebuildSchema(Schema):
    stored = fields.Boolean(required=True)
    changes = fields.List(fields.String(), required=True)
    members = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    agents = fields.Integer(required=True)
    qualified = fields.Integer(required=True)
    pools = fields.List(fields.Nested(PoolAnswerSchema), required=True)


# ------------------------------------------------------------------- health
class HealthSchema(Schema):
    status = fields.String(required=True)


class CheckSchema(Schema):
    ok = fields.Boolean(required=True)
    detail = fields.String(allow_none=True)


class ReadySchema(Schema):
    ready = fields.Boolean(required=True)
    degraded = fields.Boolean(required=True)
    model_version = fields.String(allow_none=True)
    checks = fields.Dict(keys=fields.String(), values=fields.Nested(CheckSchema), required=True)
    reasons = fields.List(fields.String(), required=True)


# ------------------------------------------------------------------- reports
# The forms a period is written in: ISO 8601 dates and date-times. Python's parser
# also reads 20261130 (taken as its midnight, so a "to" left that day out) and 2026-W44
# (that week's Monday).
class PeriodInstant(fields.DateTime):
    """A period's start or end, in one of ``DATE_FORMS`` only."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not DATE_FORMS.fullmatch(value.strip()):
            raise ma.ValidationError(DATE_FORMS_MESSAGE)
        return super()._deserialize(value.strip(), attr, data, **kwargs)


class ReportQuerySchema(Schema):
    from_ = PeriodInstant(
        data_key="from",
        load_default=None,
        validate=_plausible_time,
        metadata={"description": "start of the period (ISO date or date-time, UTC if naive)"},
    )
    to = PeriodInstant(
        load_default=None,
        validate=_plausible_time,
        metadata={"description": "end of the period (exclusive)"},
    )

    @validates_schema
    def _ordered(self, data: dict, **_kwargs) -> None:
        start, end = data.get("from_"), data.get("to")
        if start is not None and end is not None:
            from service.db import to_naive_utc

            if to_naive_utc(start) >= to_naive_utc(end):
                raise ma.ValidationError("must be before 'to'", "from")


class MeasuresSchema(Schema):
    n = fields.Integer(required=True)
    reward = fields.Float(
        allow_none=True, metadata={"description": "mean of the report's reward (see reward)"}
    )
    reward_n = fields.Integer(metadata={"description": "contacts whose reward is known"})
    suggested = fields.Integer(
        metadata={"description": "contacts with an outcome where a value activity was suggested"}
    )
    offered = fields.Integer(
        metadata={"description": "of the suggested, those the agent offered (offered=true)"}
    )
    offer_rate = fields.Float(
        allow_none=True,
        metadata={"description": "offered when suggested: offered / suggested"},
    )
    accepted = fields.Integer(
        metadata={"description": "of the offered, those the customer took up"}
    )
    acceptance = fields.Float(
        allow_none=True,
        metadata={
            "description": "accepted when offered: accepted / offered with a recorded answer"
        },
    )
    offered_unsuggested = fields.Integer(
        metadata={
            "description": "offers made where no value activity was suggested (the holdout, "
            "or the model chose none); not in offered"
        }
    )
    ves_confidence = fields.Float(allow_none=True, metadata={"description": "VES item 1 (1-7)"})
    ves_ability = fields.Float(allow_none=True, metadata={"description": "VES item 2 (1-7)"})
    ves = fields.Float(allow_none=True, metadata={"description": "mean of the two VES items"})
    success_rate = fields.Float(
        allow_none=True, metadata={"description": "ve_success among contacts with VES answers"}
    )
    handle_time_s = fields.Float(allow_none=True)
    csat = fields.Float(allow_none=True)
    nps = fields.Float(
        allow_none=True,
        metadata={"description": "net promoter score: % promoters (9-10) - % detractors (0-6)"},
    )
    ces = fields.Float(
        allow_none=True, metadata={"description": "mean effort (1-7, lower is easier)"}
    )
    retained_60d = fields.Float(allow_none=True)
    # The answers behind each mean (a rate from a handful of answers is noise).
    ves_n = fields.Integer(metadata={"description": "contacts with both VES items answered"})
    success_n = fields.Integer(metadata={"description": "contacts with ve_success known"})
    handle_time_n = fields.Integer(metadata={"description": "contacts with a handle time"})
    csat_n = fields.Integer(metadata={"description": "CSAT answers"})
    nps_n = fields.Integer(metadata={"description": "NPS answers"})
    ces_n = fields.Integer(metadata={"description": "CES answers"})
    retained_60d_n = fields.Integer(
        metadata={"description": "contacts whose 60-day retention is known (window closed)"}
    )


class GroupMeasuresSchema(MeasuresSchema):
    group = fields.String(required=True)


class DifferenceSchema(Schema):
    treated = fields.Float(allow_none=True)
    holdout = fields.Float(allow_none=True)
    n_treated = fields.Integer(required=True, metadata={"description": "contacts"})
    n_holdout = fields.Integer(required=True, metadata={"description": "contacts"})
    units_treated = fields.Integer(
        required=True,
        metadata={"description": "customers (the randomized units the interval rests on)"},
    )
    units_holdout = fields.Integer(required=True, metadata={"description": "customers"})
    enough_data = fields.Boolean(
        required=True,
        metadata={"description": "both arms have min_customers customers: else no interval"},
    )
    value = fields.Float(allow_none=True, metadata={"description": "treated minus holdout"})
    ci_low = fields.Float(allow_none=True, metadata={"description": "95% interval"})
    ci_high = fields.Float(allow_none=True)


class UpliftSchema(DifferenceSchema):
    declared = fields.Boolean(required=True)
    pre_declared = fields.Boolean(required=True)


class RoiSchema(DifferenceSchema):
    """``value`` and its interval: the total spread over the treated contacts; ``treated``
    and ``holdout``: each arm's value per customer on that same per-treated-contact scale
    (the holdout's as if its customers called as often), so ``treated - holdout`` is
    ``value``."""

    treated = fields.Float(
        allow_none=True,
        metadata={
            "description": "the treated arm's value per customer, spread over the treated "
            "contacts (per-treated-contact scale)"
        },
    )
    holdout = fields.Float(
        allow_none=True,
        metadata={
            "description": "the holdout's value per customer on the same per-treated-contact "
            "scale (not per its own contacts), so treated - holdout = value"
        },
    )
    value = fields.Float(
        allow_none=True,
        metadata={"description": "treated minus holdout per treated contact"},
    )

    value_of_retention = fields.Float(required=True)
    cost_per_second = fields.Float(required=True)
    per_customer = fields.Nested(
        DifferenceSchema,
        required=True,
        metadata={
            "description": "value_of_retention x retained 60 days after the customer's first "
            "contact + the revenue of their upgrades in those 60 days (upgrade_revenue) - "
            "cost_per_second x the handle time of their contacts, by arm"
        },
    )
    treated_customers = fields.Integer(required=True)
    treated_contacts = fields.Integer(required=True)
    total = fields.Float(
        allow_none=True, metadata={"description": "per customer difference x treated customers"}
    )
    total_ci_low = fields.Float(allow_none=True, metadata={"description": "95% interval"})
    total_ci_high = fields.Float(allow_none=True)
    handle_time = fields.Nested(DifferenceSchema, required=True)
    upgrade_revenue = fields.Nested(
        DifferenceSchema,
        required=True,
        metadata={
            "description": "per customer: the values of their `upgraded` events in the 60 "
            "days after their first contact (an event without a value counts 0), by arm; "
            "part of per_customer"
        },
    )
    upgrades_valued = fields.Boolean(
        required=True,
        metadata={"description": "false for data without upgrade revenue: not in the value"},
    )
    upgrades_without_value = fields.Dict(
        keys=fields.String(validate=validate.OneOf(["treated", "holdout"])),
        values=fields.Integer(allow_none=True),
        metadata={
            "description": "per arm (treated, holdout): `upgraded` events in the revenue's "
            "windows sent without a value (counted 0); null: the data does not say"
        },
    )
    upgrade_revenue_note = fields.String(
        allow_none=True,
        metadata={
            "description": "set when upgrades lack a value: which money figures are then "
            "bounds (an arm's revenue a lower bound; the difference a lower bound when only "
            "treated upgrades lack one, an upper bound when only holdout ones do)"
        },
    )


class SuccessMeasuresSchema(Schema):
    declared = fields.List(fields.String(), required=True)
    declared_at = fields.String(allow_none=True)
    pre_declared = fields.Boolean(required=True)
    note = fields.String(required=True)


class RewardInfoSchema(Schema):
    name = fields.String(required=True)
    label = fields.String(required=True)
    description = fields.String(required=True)
    weights = fields.Dict(keys=fields.String(), values=fields.Float())
    known = fields.Integer(required=True, metadata={"description": "contacts with it known"})
    unknown = fields.Integer(
        required=True,
        metadata={"description": "contacts with an outcome whose reward is not known yet"},
    )
    note = fields.String(required=True)


class EstimateSchema(Schema):
    value = fields.Float(allow_none=True)
    ci_low = fields.Float(allow_none=True, metadata={"description": "95% interval"})
    ci_high = fields.Float(allow_none=True)


class ShadowComparisonSchema(Schema):
    shadow_version = fields.String(required=True)
    champion_versions = fields.List(fields.String(), required=True)
    rows = fields.Integer(required=True)
    customers = fields.Integer(required=True)
    champion_value = fields.Nested(EstimateSchema, required=True)
    shadow_value = fields.Nested(EstimateSchema, required=True)
    improvement = fields.Nested(
        EstimateSchema,
        required=True,
        metadata={"description": "shadow minus champion, paired, clustered by customer"},
    )
    agreement = fields.Float(allow_none=True)
    unsupported = fields.Float(
        required=True,
        metadata={"description": "share of contacts where logging could not serve its choice"},
    )
    would_pass_gate = fields.Boolean(required=True)
    verdict = fields.String(required=True)


class ShadowReportSchema(Schema):
    description = fields.String(required=True)
    estimator = fields.String(required=True)
    measures = fields.String(required=True)
    comparisons = fields.List(fields.Nested(ShadowComparisonSchema), required=True)


class HoldoutOffersSchema(Schema):
    contacts = fields.Integer(
        required=True,
        metadata={"description": "holdout contacts where a value offer was made anyway"},
    )
    holdout_contacts = fields.Integer(
        required=True, metadata={"description": "holdout contacts with an outcome"}
    )
    share = fields.Float(allow_none=True, metadata={"description": "contacts / holdout_contacts"})
    customers = fields.Integer(required=True, metadata={"description": "their customers"})
    warning = fields.String(
        allow_none=True,
        metadata={"description": "set when any: the control group is contaminated"},
    )


class ValueReportQuerySchema(ReportQuerySchema):
    reward = fields.String(
        load_default=None,
        validate=validate.OneOf(REWARDS),
        metadata={"description": "the reward to report (default ve_success or VEA_VALUE_CONFIG)"},
    )
    reward_weights = fields.String(
        load_default=None,
        validate=validate.Length(max=500),
        metadata={"description": "for reward=weighted, e.g. ve_success=1,accepted=0.5"},
    )

    @validates_schema
    def _reward(self, data: dict, **_kwargs) -> None:
        if data.get("reward") is None and data.get("reward_weights"):
            raise ma.ValidationError("needs reward=weighted", "reward_weights")
        if data.get("reward") is not None:
            try:
                parse_reward(data["reward"], data.get("reward_weights"))
            except RewardError as exc:
                raise ma.ValidationError(str(exc), "reward_weights") from None


class PeriodSchema(Schema):
    from_ = fields.String(data_key="from", attribute="from", allow_none=True)
    to = fields.String(allow_none=True)


class ShareRunSchema(Schema):
    """One run of decisions a single holdout share explains (``srm.share_history``)."""

    from_ = fields.String(
        data_key="from",
        attribute="from",
        allow_none=True,
        metadata={"description": "the run's first decision (UTC)"},
    )
    to = fields.String(allow_none=True, metadata={"description": "the run's last decision"})
    changed_after = fields.String(
        allow_none=True,
        metadata={
            "description": "the last decision of the run before that only the earlier share "
            "explains: the change lies between it and this run's from (null: the first run)"
        },
    )
    decisions = fields.Integer(required=True)
    share = fields.Float(required=True, metadata={"description": "the share in force"})
    share_low = fields.Float(
        required=True, metadata={"description": "lowest share the run allows (exclusive)"}
    )
    share_high = fields.Float(
        required=True, metadata={"description": "highest share the run allows (inclusive)"}
    )


class SrmSchema(Schema):
    """Sample ratio mismatch: customers per arm against the holdout share in force (read
    from the decisions when they show it, else the configured one), chi-square goodness
    of fit, flagged at p < alpha."""

    configured_share = fields.Float(
        required=True, metadata={"description": "VEA_HOLDOUT_SHARE when the report ran"}
    )
    experiment = fields.String(allow_none=True, metadata={"description": "VEA_EXPERIMENT"})
    holdout_customers = fields.Integer(required=True)
    treated_customers = fields.Integer(required=True)
    both_arms_customers = fields.Integer(
        required=True, metadata={"description": "customers seen in both arms (should be 0)"}
    )
    observed_share = fields.Float(allow_none=True)
    expected_share = fields.Float(
        allow_none=True,
        metadata={"description": "the holdout share the test expects (the share(s) in force)"},
    )
    share_source = fields.String(
        validate=validate.OneOf(["configured", "decisions", "unchecked"]),
        metadata={
            "description": "configured: every decision follows VEA_HOLDOUT_SHARE; decisions: "
            "the share in force was read from the decisions; unchecked: the arms do not "
            "follow VEA_EXPERIMENT's hash, the configured share is used"
        },
    )
    share_changes = fields.Integer(
        allow_none=True,
        metadata={
            "description": "changes of the share within the period (flags the uplift); null: "
            "not read from the decisions"
        },
    )
    share_history = fields.List(
        fields.Nested(ShareRunSchema),
        allow_none=True,
        metadata={"description": "each run's share and times (share_source: decisions)"},
    )
    assigned_otherwise = fields.Integer(
        allow_none=True,
        metadata={
            "description": "decisions not in the arm the configured share and experiment "
            "give their customer (null: no experiment or no decisions)"
        },
    )
    both_arms_expected = fields.Float(
        metadata={"description": "customers expected in both arms (across a share change)"}
    )
    min_expected = fields.Float(
        metadata={
            "description": "customers each category must expect for the test (Cochran's rule)"
        }
    )
    chi_square = fields.Float(allow_none=True)
    p_value = fields.Float(allow_none=True)
    alpha = fields.Float(required=True)
    tested = fields.Boolean(
        required=True, metadata={"description": "false: no holdout, or too few customers"}
    )
    mismatch = fields.Boolean(required=True)
    message = fields.String(required=True)


class ValueReportSchema(Schema):
    period = fields.Nested(PeriodSchema, required=True)
    decisions = fields.Integer(required=True)
    with_outcome = fields.Integer(required=True)
    pending = fields.Integer(required=True)
    surveys_pending = fields.Integer(
        required=True,
        metadata={
            "description": "pending decisions with survey answers waiting for the agent's "
            "outcome: they count in the figures once it is recorded"
        },
    )
    reward = fields.Nested(RewardInfoSchema, required=True)
    overall = fields.Nested(MeasuresSchema, required=True)
    by = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.Nested(GroupMeasuresSchema)),
        required=True,
        metadata={
            "description": "activity, segment, issue_type, channel, pool_id, agent_id over "
            "the treated contacts (see by_note); experiment_arm over every contact"
        },
    )
    by_note = fields.String(required=True, metadata={"description": "which contacts by covers"})
    uplift = fields.Dict(keys=fields.String(), values=fields.Nested(UpliftSchema), required=True)
    treated_vs_holdout = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(DifferenceSchema),
        required=True,
        metadata={
            "description": "csat, nps (per answer +100/0/-100: the mean is the score), ces, "
            "handle_time_s, upgraded: treated minus holdout with a 95% interval"
        },
    )
    min_customers = fields.Integer(
        required=True, metadata={"description": "customers per arm an interval needs"}
    )
    holdout_offers = fields.Nested(
        HoldoutOffersSchema,
        required=True,
        metadata={"description": "value offers made to the holdout (control group)"},
    )
    roi = fields.Nested(RoiSchema, required=True)
    success_measures = fields.Nested(SuccessMeasuresSchema, required=True)
    shadow = fields.Nested(ShadowReportSchema, required=True)
    srm = fields.Nested(
        SrmSchema,
        required=True,
        metadata={"description": "sample ratio mismatch check of the holdout split"},
    )
    uplift_trustworthy = fields.Boolean(
        required=True, metadata={"description": "false when the sample ratio check fires"}
    )
    uplift_note = fields.String(allow_none=True)


class FeatureDriftSchema(Schema):
    feature = fields.String(required=True)
    psi = fields.Float(allow_none=True)
    level = fields.String(validate=validate.OneOf(["stable", "watch", "act", "no_data"]))
    drifted = fields.Boolean(required=True)


class CalibrationBandSchema(Schema):
    band = fields.String(required=True)
    n = fields.Integer(required=True)
    predicted = fields.Float(allow_none=True)
    observed = fields.Float(allow_none=True)
    gap = fields.Float(allow_none=True)


class DriftReportSchema(Schema):
    period = fields.Nested(PeriodSchema, required=True)
    model_version = fields.String(allow_none=True)
    has_reference = fields.Boolean(required=True)
    decisions = fields.Integer(required=True)
    threshold = fields.Float(required=True)
    features = fields.List(fields.Nested(FeatureDriftSchema), required=True)
    calibration = fields.List(fields.Nested(CalibrationBandSchema), required=True)


class Situation(fields.String):
    """``segment,issue_type``, loaded as the features of a situation (one parse: the
    error names the features that may be given)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parse_situation(text)
        except ValueError as exc:
            raise ma.ValidationError(str(exc)) from None


class OrganicReportQuerySchema(ReportQuerySchema):
    by = Situation(
        load_default=DEFAULT_SITUATION,
        metadata={
            "description": "the features a situation is made of, comma-separated, from "
            + ", ".join(SITUATION_FEATURES)
            + f" (default {','.join(DEFAULT_SITUATION)})"
        },
    )
    min_attempts = fields.Integer(
        load_default=ORGANIC_MIN_ATTEMPTS,
        validate=validate.Range(min=1, max=1_000_000),
        metadata={"description": "organic attempts with a result a candidate needs"},
    )


class OrganicRowSchema(Schema):
    situation = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    activity = fields.String(required=True)
    contacts = fields.Integer(required=True, metadata={"description": "the situation's contacts"})
    organic_attempts = fields.Integer(required=True)
    organic_with_result = fields.Integer(
        required=True, metadata={"description": "organic attempts whose VES result is known"}
    )
    organic_successes = fields.Integer(required=True)
    organic_success_rate = fields.Float(allow_none=True)
    interval = fields.List(
        fields.Float(), allow_none=True, metadata={"description": "95% Wilson interval"}
    )
    suggested_share = fields.Float(
        required=True,
        metadata={"description": "share of the situation's contacts vea suggested it for"},
    )
    candidate = fields.Boolean(required=True)


class OrganicReportSchema(Schema):
    period = fields.Nested(PeriodSchema, required=True)
    situation = fields.List(fields.String(), required=True)
    min_attempts = fields.Integer(required=True)
    contacts = fields.Integer(required=True)
    attempts_with_result = fields.Integer(required=True)
    baseline_success_rate = fields.Float(
        allow_none=True, metadata={"description": "success of every attempt with a result"}
    )
    organic_attempts = fields.Integer(required=True)
    candidates = fields.Integer(required=True)
    rows = fields.List(fields.Nested(OrganicRowSchema), required=True)
    note = fields.String(required=True)


# --------------------------------------------------------------------- audit
class AuditCursor(fields.String):
    """The ``next`` of an earlier audit page, loaded as the position it stands for."""

    default_error_messages = {"cursor": "not a cursor: pass the `next` of an earlier answer"}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return decode_cursor(text)
        except ValueError:
            raise self.make_error("cursor") from None


class AuditQuerySchema(ReportQuerySchema):
    """The audit log's period (the reports' query: ``from`` before ``to``, UTC) and its
    paging: ``limit`` events a page, the next page from the answer's ``next``."""

    limit = fields.Integer(
        load_default=AUDIT_PAGE,
        validate=validate.Range(min=1, max=AUDIT_MAX_PAGE),
        metadata={
            "description": f"events per page ({AUDIT_PAGE} by default, at most {AUDIT_MAX_PAGE})"
        },
    )
    cursor = AuditCursor(
        load_default=None,
        metadata={
            "description": "the `next` of the previous page (same from/to); omitted: the first page"
        },
    )


class AuditEventSchema(Schema):
    id = fields.Integer(required=True)
    occurred_at = fields.String(required=True, metadata={"description": "UTC, ISO 8601"})
    actor = fields.String(
        required=True,
        metadata={"description": "the API key id, `cli:<OS user>`, `cli` or `system`"},
    )
    action = fields.String(
        required=True, metadata={"description": "e.g. key.create, customer.erase, model.promote"}
    )
    target = fields.String(
        allow_none=True,
        metadata={"description": "key id, model version...; never a customer id (null)"},
    )
    details = fields.Dict(allow_none=True, metadata={"description": "counts and settings"})


class AuditSchema(Schema):
    events = fields.List(fields.Nested(AuditEventSchema), required=True)
    next = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "cursor of the following page (pass it as `cursor`); null: "
            "this page holds the period's last events"
        },
    )
    resume = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "cursor of the position after this page (after its last event, "
            "or the asked cursor's when none followed it): keep it and ask later with "
            "`cursor=<resume>` for the events recorded since; null: nothing was read "
            "from the start"
        },
    )
