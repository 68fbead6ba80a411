"""The decision, outcome and event use cases: validate -> history -> decide -> store.

Each use case is one database transaction. The views in ``service/api`` only parse,
call these and serialize.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from models import elapsed
from models.activities import NONE
from models.contact_policy import PolicyResult, evaluate, summarize_history
from models.exploration import HOLDOUT, candidates, draw, holdout_arm
from models.matching import served_probabilities
from models.reasons import activity_name, category_name, language_of
from service import history
from service.db import (
    READ_ONLY,
    autocommit_connection,
    begin_write,
    customer_events,
    decisions,
    error_name,
    is_unavailable,
    iso_utc,
    lock_customer,
    outcomes,
    surveys,
    to_naive_utc,
    utcnow,
)
from service.errors import ApiError, unavailable_as_503
from service.schemas import CLOCK_SKEW, SURVEY_ANSWERS
from service.state import State

log = logging.getLogger("vea.decisions")

CANONICAL_CUSTOMER = ("segment", "persona", "tenure_months", "switching_effort")
EVENT_LOOKBACK_DAYS = 90

_TEXT = {
    "en": {
        # {ago}: models.elapsed.AGO ("just now", "12 min ago", "3 h ago", "2 days ago").
        "continues": "continues a {channel} contact made {ago} (issue: {issue})",
        "issue_from_earlier": "issue type taken from the earlier contact",
        "db_down": "database unavailable: history not used and this decision was not stored",
        "holdout": "randomized holdout (control group): no value activity for this customer",
        "explored": "exploring (to learn what works): “{activity}” shown instead of the "
        "top-ranked “{best}”",
        # A capacity fallback then changed the activity drawn: the route's reason follows.
        "explored_drawn": "exploring (to learn what works): “{activity}” drawn instead of "
        "the top-ranked “{best}”",
        "updated": "decided again: the contact's details changed since the first decision",
    },
    "ja": {
        # 種別, as the desk's earlier-contact card names the issue type.
        "continues": "{ago}の{channel}でのお問い合わせの続きです（種別: {issue}）",
        "issue_from_earlier": "問い合わせ種別は前回のお問い合わせから引き継ぎました",
        "db_down": "データベースに接続できないため、履歴を使わずに判定しました（この判定は"
        "保存されていません）",
        "holdout": "効果測定の対照群（ランダム割付）のため、価値向上の提案は行いません",
        "explored": "探索（効果を学ぶための試行）: 最上位の「{best}」ではなく「{activity}」を"
        "表示しています",
        "explored_drawn": "探索（効果を学ぶための試行）: 最上位の「{best}」ではなく「{activity}」を"
        "抽選しました",
        "updated": "お問い合わせの内容が最初の判定から変わったため、判定し直しました",
    },
}


def _text(language: str) -> dict[str, str]:
    return _TEXT[language_of(language)]  # ja-JP reads Japanese, like the hints


def _not_stored(what: str) -> str:
    return f"database unavailable: the {what} was not stored; retry later"


def _unavailable(state: State, what: str) -> ApiError:
    return ApiError(
        503, _not_stored(what), headers={"Retry-After": str(state.settings.retry_after_s)}
    )


def _not_stored_as_503(state: State, what: str):
    """A write the database cannot take: 503 + Retry-After saying ``what`` was not
    stored (the caller retries the same body; nothing half-written stays)."""
    return unavailable_as_503(_not_stored(what), state.settings.retry_after_s)


# ----------------------------------------------------------------- decisions
def model_features(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Canonical feature mapping for the model, and the agent-facing language."""
    customer, contact = body["customer"], body["contact"]
    features: dict[str, Any] = dict(body.get("features") or {})
    for name in CANONICAL_CUSTOMER:
        features[name] = customer.get(name)
    features["channel"] = contact["channel"]
    features["issue_type"] = contact.get("issue_type")
    features["sentiment"] = contact.get("sentiment")
    features["prior_contacts_30d"] = customer.get("prior_contacts_30d")
    features["language"] = customer.get("language") or contact.get("language")
    language = contact.get("language") or customer.get("language") or "en"
    return features, language


CREATED, REPLAYED, UPDATED, UNSTORED = "created", "replayed", "updated", "unstored"
MAX_EARLIER_REQUESTS = 32  # bodies an interaction remembers having replaced


def request_fingerprint(body: dict[str, Any]) -> str:
    """Hash of a validated decision body: tells a retry (the same body) from a call
    again with changed details (key order, formatting and a time's offset do not count)."""
    contact = body["contact"]
    moment = contact.get("occurred_at")
    if moment is not None:
        body = {**body, "contact": {**contact, "occurred_at": _utc_text(moment)}}
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


class _KnownInteraction(Exception):
    """The decision's ``interaction_id`` is already stored."""


def decide(state: State, body: dict[str, Any], key_id: str | None) -> tuple[dict[str, Any], str]:
    """Return ``(answer, how)``: ``CREATED``; ``REPLAYED`` for a known ``interaction_id``
    with the same body (the stored answer); ``UPDATED`` for a known one with changed
    details (decided again, see ``_decide_again``); ``UNSTORED`` when the database is
    down (degraded answer)."""
    now = utcnow()
    occurred_at = _contact_time(body, now)
    fingerprint = request_fingerprint(body)
    try:
        rows = _history(state, body, occurred_at)
        answer, row = _compute(state, body, rows, occurred_at, now, key_id, stored=True)
        row["request_hash"] = fingerprint
        # No look-up of the interaction id first: a retry is rare, and the insert skips
        # a known one (then the stored answer is returned below).
        if not state.writer.insert(row):
            raise _KnownInteraction
    except (_KnownInteraction, IntegrityError):
        # The interaction id is known: a retry, a concurrent twin that committed first,
        # or the same contact called again with changed details.
        try:
            return _known_interaction(state, body, fingerprint, key_id)
        except (DBAPIError, PoolTimeout) as exc:
            if isinstance(exc, DBAPIError) and not is_unavailable(exc):
                raise
            raise _unavailable(state, "decision") from None
    except (DBAPIError, PoolTimeout) as exc:
        # PoolTimeout: every pooled connection busy for the pool's timeout (overload).
        if isinstance(exc, DBAPIError) and not is_unavailable(exc):
            raise
        log.error("database unavailable for a decision", extra={"error": error_name(exc)})
        state.metrics.degraded.labels(reason="database").inc()
        answer, _ = _compute(state, body, [], occurred_at, now, key_id, stored=False)
        state.metrics.child(state.metrics.decisions, answer["suggested_activity"]).inc()
        return answer, UNSTORED
    state.metrics.child(state.metrics.decisions, answer["suggested_activity"]).inc()
    return answer, CREATED


STORED_DECISION = sa.select(
    decisions.c.decision_id,
    decisions.c.response,
    decisions.c.customer_id,
    decisions.c.request_hash,
    decisions.c.earlier_request_hashes,
    decisions.c.occurred_at,
    sa.exists().where(outcomes.c.decision_id == decisions.c.decision_id).label("has_outcome"),
).where(decisions.c.interaction_id == sa.bindparam("interaction_id"))


def _contact_time(body: dict[str, Any], now: datetime) -> datetime:
    """When the contact happened (naive UTC). Never in the future: a caller's clock
    running ahead would otherwise hide this contact from the history of the next one."""
    occurred = body["contact"].get("occurred_at")
    return min(to_naive_utc(occurred), now) if occurred else now


def _history(state: State, body: dict[str, Any], until: datetime) -> list[history.HistoryRow]:
    """The customer's earlier contacts. Read in autocommit and the connection returned at
    once: no lock, transaction or pooled connection is held while the model runs or while
    the insert waits in the group commit (service.group_commit)."""
    days = history.lookback_days(state.settings.decline_days)
    with autocommit_connection(state.engine) as conn:
        return history.fetch(conn, body["customer"]["customer_id"], until, days)


def _stored_decision(state: State, body: dict[str, Any]) -> Any:
    """The stored decision of the body's ``interaction_id`` (a row), or None."""
    with state.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        row = conn.execute(STORED_DECISION, {"interaction_id": body["interaction_id"]}).first()
    if row is None:
        return None
    if row.customer_id != body["customer"]["customer_id"]:
        raise ApiError(
            409,
            "interaction_id was already used for another customer",
            fields={"interaction_id": ["already used for another customer"]},
        )
    return row


def _known_interaction(
    state: State, body: dict[str, Any], fingerprint: str, key_id: str | None
) -> tuple[dict[str, Any], str]:
    stored = _stored_decision(state, body)
    if stored is None:
        raise RuntimeError("a known interaction_id has no stored decision")
    # Decisions stored before the body's hash was kept (migration 0006) are replayed, and
    # so is a late retry of a body the decision has already replaced.
    if stored.request_hash in (None, fingerprint) or fingerprint in (
        stored.earlier_request_hashes or ()
    ):
        return stored.response, REPLAYED
    return _decide_again(state, body, stored, fingerprint, key_id), UPDATED


def _decide_again(
    state: State, body: dict[str, Any], stored: Any, fingerprint: str, key_id: str | None
) -> dict[str, Any]:
    """The same interaction with changed details (the desktop calls again once the issue
    type is known): decided anew under the same decision id, replacing the stored
    decision, so the outcome later posted to that id belongs to what was served last.
    The interaction's own earlier decision is not history (no prior contact, no
    continuation, no attempt against the weekly cap). Once an outcome is recorded the
    decision is settled: 409."""
    if stored.has_outcome:
        raise _settled()
    now = utcnow()
    # The contact keeps its time unless the body names one: deciding it again must not
    # move it after the contacts that followed it (a call continuing this chat would
    # become its history, and count against its weekly cap).
    occurred_at = (
        _contact_time(body, now)
        if body["contact"].get("occurred_at") or stored.occurred_at is None
        else to_naive_utc(stored.occurred_at)
    )
    rows = [
        r for r in _history(state, body, occurred_at) if r.interaction_id != body["interaction_id"]
    ]
    answer, row = _compute(
        state, body, rows, occurred_at, now, key_id, stored=True, decision_id=stored.decision_id
    )
    row["request_hash"] = fingerprint
    earlier = [*(stored.earlier_request_hashes or ()), stored.request_hash]
    row["earlier_request_hashes"] = earlier[-MAX_EARLIER_REQUESTS:]
    changes = {k: v for k, v in row.items() if k not in ("decision_id", "interaction_id")}
    with begin_write(state.engine) as conn:
        # The decision locked first, and only then "no outcome yet?" asked (by the next
        # statement, which on PostgreSQL sees what committed while it waited): asked in
        # the UPDATE itself, an outcome committed during its wait for the lock was not
        # seen, and the outcome recorded another activity than the decision kept.
        conn.execute(_LOCKED_DECISION, {"decision_id": stored.decision_id})
        replaced = conn.execute(
            decisions.update()
            .where(
                decisions.c.decision_id == stored.decision_id,
                decisions.c.request_hash == stored.request_hash,
                ~sa.exists().where(outcomes.c.decision_id == stored.decision_id),
            )
            .values(**changes)
        ).rowcount
    if replaced == 1:
        state.metrics.child(state.metrics.decisions, answer["suggested_activity"]).inc()
        return answer
    # An outcome or another change came first: answer with what is stored now.
    now_stored = _stored_decision(state, body)
    if now_stored is not None and now_stored.request_hash == fingerprint:
        return now_stored.response
    raise (
        _settled()
        if now_stored is not None and now_stored.has_outcome
        else ApiError(
            409,
            "interaction_id was changed by another request at the same time: retry",
            code="decision_changed",
        )
    )


def _settled() -> ApiError:
    return ApiError(
        409,
        "this interaction's decision already has an outcome: a changed contact needs a new "
        "interaction_id",
        fields={"interaction_id": ["decided and its outcome recorded"]},
        code="decision_has_outcome",
    )


def _compute(
    state: State,
    body: dict[str, Any],
    rows: list[history.HistoryRow],
    occurred_at: datetime,
    now: datetime,
    key_id: str | None,
    *,
    stored: bool,
    decision_id: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    settings = state.settings
    features, language = model_features(body)
    text = _text(language)
    contact = body["contact"]
    reasons_after: list[str] = []

    prior_source = "request"
    if features["prior_contacts_30d"] is None:
        if stored:
            features["prior_contacts_30d"] = history.prior_contacts(rows, occurred_at)
            prior_source = "history"
        else:
            prior_source = "unknown"

    earlier = history.continued(rows, occurred_at, settings.continuation_window_min)
    issue_source = "request" if features["issue_type"] else "unknown"
    if earlier is not None:
        gap = (occurred_at - earlier.occurred_at).total_seconds()
        reasons_after.append(
            text["continues"].format(
                channel=category_name(earlier.channel, language),
                ago=elapsed.say(gap, elapsed.AGO[language_of(language)]),
                issue=category_name(earlier.issue_type, language),
            )
        )
        if not features["issue_type"] and earlier.issue_type:
            features["issue_type"] = earlier.issue_type
            issue_source = "continuation"
            reasons_after.append(text["issue_from_earlier"])

    summary = summarize_history((r.past_contact() for r in rows), occurred_at)
    policy: PolicyResult = evaluate(
        state.policy,
        summary,
        issue_type=features["issue_type"],
        sentiment=contact.get("sentiment"),
        language=language,
    )
    served = state.models.decide(
        features,
        language=language,
        blocked_activities=policy.blocked_activities,
        allow_attempt=policy.allow_attempt,
    )
    result = served.result
    if served.degraded:
        state.metrics.degraded.labels(reason=served.degraded_reason or "model").inc()
    if decision_id is None:
        decision_id = secrets.token_hex(16)
    else:
        reasons_after.append(text["updated"])
    suggested, propensity, arm, drawn_from = _serve(
        settings, result, served.degraded, decision_id, body["customer"]["customer_id"], policy
    )
    openness = result["openness"]
    best = result["suggested_activity"]
    if suggested != best:
        openness = {**openness, "attempt": suggested != NONE}

    def route_of(activity: str) -> dict[str, Any]:
        return state.pools.route(
            activity,
            result,
            features,
            channel=contact["channel"],
            language=features.get("language") or language,  # the customer's: pools, content
            reason_language=language,  # the agent's, like every other hint and reason
            blocked=policy.blocked_activities,
            economics=state.models.economics,
            decision_id=decision_id,  # a pool draw among near-equal pools replays from it
            holdout=arm == HOLDOUT,  # the route's reason names the control group
        )

    drawn = suggested
    route = route_of(drawn)
    if drawn != best:
        # Said once the route is known: a capacity fallback may show another activity
        # than the one drawn (even the top-ranked one), and its reason says which.
        explored = "explored" if route["activity"] == drawn else "explored_drawn"
        reasons_after.append(
            text["holdout"]
            if arm == HOLDOUT
            else text[explored].format(
                activity=activity_name(drawn, language), best=activity_name(best, language)
            )
        )
    if route["activity"] != suggested:
        # Capacity fallback (models.matching): a lighter activity or none in the general
        # pool rather than a longer wait for a value pool.
        suggested = route["activity"]
        openness = {**openness, "attempt": suggested != NONE}
        reasons_after.append(route["reason"])
    if len(drawn_from) > 1:
        # Logged are the chances of serving what was served, and of its pool given that:
        # capacity fallbacks can turn other draws into the same activity, routed to
        # other pools (off-policy learning needs those, not the chances of the draw).
        # Only when exploring: otherwise one activity had it all.
        draws = [
            (p, route if activity == drawn else route_of(activity))
            for activity, p in drawn_from.items()
            if p > 0.0
        ]
        propensity, pools = served_probabilities(draws, suggested)
        route = {**route, "propensity": pools[route["pool"]], "pool_probabilities": pools}
    reasons = [*result.get("reasons", []), *policy.reasons, *reasons_after]
    shadow = None
    if stored:  # compared on the stored log only; never part of the answer
        shadow, verdict = state.models.shadow_decide(
            features,
            language=language,
            blocked_activities=policy.blocked_activities,
            allow_attempt=policy.allow_attempt,
        )
        if verdict != "none":
            state.metrics.shadow.labels(verdict=verdict).inc()
    if not stored:
        reasons.append(text["db_down"])
    answer = {
        "decision_id": decision_id,
        "interaction_id": body["interaction_id"],
        "model_version": served.model_version,
        "openness": openness,
        "activities": result["activities"],
        "suggested_activity": suggested,
        "route": route,
        "propensity": propensity,
        "experiment_arm": arm,
        "degraded": served.degraded or not stored,
        "reasons": reasons,
        "contact_policy": {
            "allow_attempt": policy.allow_attempt,
            "blocked_activities": sorted(policy.blocked_activities),
            "reasons": policy.reasons,
        },
        "continuation": history.continuation_payload(earlier) if earlier else None,
        "context": {
            "prior_contacts_30d": features["prior_contacts_30d"] or 0,
            "prior_contacts_source": prior_source,
            "issue_type_source": issue_source,
            "occurred_at": iso_utc(occurred_at),
        },
        "stored": stored,
        "created_at": iso_utc(now),
    }
    row = {
        "decision_id": decision_id,
        "interaction_id": body["interaction_id"],
        "customer_id": body["customer"]["customer_id"],
        "occurred_at": occurred_at,
        "created_at": now,
        "channel": contact["channel"],
        "issue_type": features["issue_type"],
        "language": language,
        "features": features,
        "suggested_activity": suggested,
        "propensity": propensity,
        "pool_id": route["pool"],
        "pool_propensity": route.get("propensity", 1.0),
        "model_version": served.model_version,
        "experiment_arm": arm,
        "degraded": bool(answer["degraded"]),
        "openness": float(result["openness"]["score"]),
        "continues_decision_id": earlier.decision_id if earlier else None,
        "api_key_id": key_id,
        "response": answer,
        "best_activity": result["suggested_activity"],
        "shadow_version": shadow["version"] if shadow else None,
        "shadow_activity": shadow["activity"] if shadow else None,
        # The champion's value of "none" completes the report's direct-method term.
        "shadow": (
            {**shadow, "champion_expected_value_none": result.get("expected_value_none", 0.0)}
            if shadow
            else None
        ),
    }
    return answer, row


def _serve(
    settings: Any,
    result: dict[str, Any],
    degraded: bool,
    decision_id: str,
    customer_id: str,
    policy: PolicyResult,
) -> tuple[str, float, str, dict[str, float]]:
    """The served activity, its logged probability, the experiment arm and the
    distribution it was drawn from.

    Holdout customers always get `none` (probability 1 within their arm). Otherwise the
    model's best action is explored around (``models.exploration``); the degraded rules
    are not explored (their choices carry no learned values to spread over).
    """
    arm = holdout_arm(customer_id, settings.holdout_share, settings.experiment)
    if arm == HOLDOUT:
        return NONE, 1.0, arm, {NONE: 1.0}
    best = result["suggested_activity"]
    config = settings.exploration_config()
    if degraded or config.mode == "none":
        return best, 1.0, arm, {best: 1.0}
    values = candidates(
        {a["activity"]: a["expected_value"] for a in result["activities"]},
        result.get("expected_value_none", 0.0),
        blocked=policy.blocked_activities,
        allow_attempt=policy.allow_attempt,
    )
    chosen = draw(decision_id, values, best, config)
    return chosen.action, chosen.propensity, arm, dict(chosen.distribution)


# ------------------------------------------------------------------ outcomes
def _payload(body: dict[str, Any]) -> dict[str, Any]:
    """JSON-able form of a validated body, as stored with it: times in UTC, so the same
    instant written with another offset is the same payload."""
    return {k: (_utc_text(v) if isinstance(v, datetime) else v) for k, v in body.items()}


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _same_payload(stored: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Whether a stored payload is ``payload``; one stored by an older release compares
    by the instant, read as the API reads it now: in UTC (older payloads kept the offset
    sent) and to the millisecond (older ones kept microseconds, so a retry sent across
    the upgrade was a 409). An explicit null is the field left out (what is stored is
    the same), so a retry serialised with or without it is the same payload."""
    stored, payload = _given(stored), _given(payload)
    if stored == payload:
        return True
    moment = stored.get("occurred_at")
    if not isinstance(moment, str):
        return False
    try:
        instant = _to_millisecond(datetime.fromisoformat(moment))
    except ValueError:
        return False
    return {**stored, "occurred_at": _utc_text(instant)} == payload


def _given(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload without its explicit nulls."""
    return {k: v for k, v in payload.items() if v is not None}


def _to_millisecond(moment: datetime) -> datetime:
    """A time as the API keeps it (``service.schemas.MillisecondTime``)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _outcome_answer(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data.pop("payload", None)
    data["occurred_at"] = iso_utc(data["occurred_at"])
    data["recorded_at"] = iso_utc(data["recorded_at"])
    return data


def record_outcome(
    state: State, decision_id: str, body: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Store the outcome of a decision once: ``(answer, created)``; a repeat that would
    store the same values returns the stored outcome, a different one is a 409."""
    payload = _payload(body)
    with _not_stored_as_503(state, "outcome"):
        try:
            with begin_write(state.engine) as conn:
                decision = conn.execute(_LOCKED_DECISION, {"decision_id": decision_id}).first()
                if decision is None:
                    raise ApiError(404, "no such decision")
                existing = _existing_outcome(conn, decision, decision_id, body)
                if existing is not None:
                    return existing, False
                survey = _stored_survey(conn, decision_id)
                facts = _outcome_facts(body, decision, survey)
                if body["offered"] and facts["activity"] == NONE:
                    raise ApiError(
                        422,
                        "the decision suggested no activity: name the activity that was offered",
                        fields={"activity": ["required when offered and nothing was suggested"]},
                    )
                now = utcnow()
                occurred = body.get("occurred_at")
                if occurred and to_naive_utc(occurred) < decision.occurred_at - CLOCK_SKEW:
                    raise ApiError(
                        422,
                        "an outcome cannot happen before its contact",
                        fields={"occurred_at": ["before the decision's contact"]},
                    )
                # Answers the survey system sent first fill what the agent did not record;
                # one that differs would be either overwritten or counted twice: 409.
                if survey is not None:
                    _refuse_conflicts(
                        {k: body[k] for k in SURVEY_ANSWERS if body.get(k) is not None},
                        survey,
                        "the survey recorded for this decision has other answers",
                    )
                row = {
                    "decision_id": decision_id,
                    **facts,
                    "occurred_at": to_naive_utc(occurred) if occurred else now,
                    "recorded_at": now,
                    "payload": payload,
                }
                conn.execute(outcomes.insert().values(**row))
        except IntegrityError:
            # A concurrent twin stored it first: answer what is stored (a 503 as well
            # when the database goes away before it can be read back).
            with state.engine.connect() as conn:
                decision = conn.execute(_DECISION, {"decision_id": decision_id}).first()
                existing = (
                    None
                    if decision is None  # erased meanwhile: the outcome went with it
                    else _existing_outcome(conn, decision, decision_id, body)
                )
            if existing is None:
                raise
            return existing, False
    state.metrics.outcomes.labels(
        activity=row["activity"], offered=str(row["offered"]).lower()
    ).inc()
    return _outcome_answer(_RowView(row)), True


# The decision row, locked until the transaction ends (PostgreSQL; SQLite's writers take
# turns anyway): an outcome and a survey of the same decision arriving together would
# each miss the other and the survey's answers would never reach the outcome.
_DECISION = sa.select(
    decisions.c.suggested_activity, decisions.c.pool_id, decisions.c.occurred_at
).where(decisions.c.decision_id == sa.bindparam("decision_id"))
_LOCKED_DECISION = _DECISION.with_for_update()


def _outcome_facts(body: dict[str, Any], decision: Any, survey: dict[str, Any] | None) -> dict:
    """The values an outcome body stores (all but its times): an explicit null is the
    field left out, the activity and pool default to the decision's, the survey's
    answers fill those the body lacks, and ``ve_success`` is derived from both VES
    items unless the body sets it. The first post stores them and a retry is compared
    by them, so a retry of the same facts serialised otherwise (a null sent, a default
    or the derived value spelled out) is the same outcome, not a conflict."""
    answers = {name: body.get(name) for name in SURVEY_ANSWERS}
    if survey is not None:
        answers = {k: survey[k] if v is None else v for k, v in answers.items()}
    ve_success = body.get("ve_success")
    if ve_success is None:
        ve_success = _top_two_box(answers)
    return {
        "activity": body.get("activity") or decision.suggested_activity,
        "offered": body["offered"],
        "accepted": body.get("accepted"),
        "ve_success": ve_success,
        **answers,
        "resolved": body.get("resolved"),
        "handle_time_s": body.get("handle_time_s"),
        "agent_id": body.get("agent_id"),
        "pool_id": body.get("pool_id") or decision.pool_id,
    }


def _outcome_differences(stored: dict[str, Any], body: dict[str, Any], facts: dict) -> dict:
    """The 409's ``fields``: each value of a retry that differs from the stored one. The
    time compares as given: a retry without one matches an outcome stored without one
    (its time was then the time it was recorded), one with a time matches the stored
    time to the millisecond."""
    differing = {
        name: [_recorded(stored[name])]
        for name, value in facts.items()
        if not _same_answer(stored[name], value)
    }
    occurred = body.get("occurred_at")
    if occurred is None:
        moved = (stored["payload"] or {}).get("occurred_at") is not None
    else:
        moved = not _same_answer(stored["occurred_at"], to_naive_utc(occurred))
    if moved:
        differing["occurred_at"] = [_recorded(stored["occurred_at"])]
    return differing


def _recorded(value: Any) -> str:
    if value is None:
        return "already recorded without a value"
    shown = ("true" if value else "false") if isinstance(value, bool) else _shown(value)
    return f"{shown} is already recorded"


def _top_two_box(answers: dict[str, Any]) -> bool | None:
    """VES success: top-2-box (6-7) on both items; unknown until both are answered."""
    confidence, ability = answers.get("ves_confidence"), answers.get("ves_ability")
    if confidence is None or ability is None:
        return None
    return confidence >= 6 and ability >= 6


def _stored_survey(conn: sa.Connection, decision_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(surveys).where(surveys.c.decision_id == decision_id)).first()
    return None if row is None else dict(row._mapping)


def _refuse_conflicts(given: dict[str, Any], stored: dict[str, Any], message: str) -> None:
    """409 naming each answer ``given`` with another value than ``stored`` has: a stored
    answer is never overwritten (nor a second one counted beside it)."""
    fields = {
        name: [f"{_shown(stored[name])} is already recorded"]
        for name, value in given.items()
        if stored.get(name) is not None and not _same_answer(stored[name], value)
    }
    if fields:
        raise ApiError(409, message, fields=fields, code="survey_conflict")


def _same_answer(stored: Any, given: Any) -> bool:
    """A stored time compares to the millisecond: one an older release stored with
    microseconds is the time a retry sends now (the API keeps milliseconds)."""
    if isinstance(stored, datetime) and isinstance(given, datetime):
        return _to_millisecond(stored) == given
    return stored == given


def _shown(value: Any) -> str:
    return iso_utc(value) if isinstance(value, datetime) else str(value)


# ------------------------------------------------------------------- surveys
def record_survey(
    state: State, decision_id: str, body: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Store a decision's survey answers: ``(answer, created)``.

    Answers add to those already stored (by an earlier survey post or the agent's
    outcome); the same answers again change nothing (``created`` False); an answer that
    differs from a stored one is a 409. With the outcome recorded they fill its empty
    answer columns in the same transaction (and ``ve_success`` when the outcome did not
    set it); without one they wait in ``surveys`` and ``record_outcome`` takes them."""
    given = {
        name: body[name] for name in ("survey_id", *SURVEY_ANSWERS) if body.get(name) is not None
    }
    if body.get("answered_at") is not None:
        given["answered_at"] = to_naive_utc(body["answered_at"])
    with _not_stored_as_503(state, "survey"), begin_write(state.engine) as conn:
        decision = conn.execute(_LOCKED_DECISION, {"decision_id": decision_id}).first()
        if decision is None:
            raise ApiError(404, "no such decision")
        answered = given.get("answered_at")
        if answered is not None and answered < decision.occurred_at - CLOCK_SKEW:
            raise ApiError(
                422,
                "a survey cannot be answered before its contact",
                fields={"answered_at": ["before the decision's contact"]},
            )
        survey = _stored_survey(conn, decision_id)
        outcome = conn.execute(
            sa.select(outcomes).where(outcomes.c.decision_id == decision_id)
        ).first()
        outcome = None if outcome is None else dict(outcome._mapping)
        if survey is not None:
            _refuse_conflicts(given, survey, "a survey with other answers is recorded")
        if outcome is not None:
            _refuse_conflicts(given, outcome, "the decision's outcome holds other answers")
        new = {k: v for k, v in given.items() if survey is None or survey[k] is None}
        if survey is not None and not new:
            return _survey_answer(survey, outcome), False
        now = utcnow()
        if survey is None:
            survey = {
                **{c.name: None for c in surveys.c},
                "decision_id": decision_id,
                **new,
                "recorded_at": now,
                "updated_at": now,
            }
            conn.execute(surveys.insert().values(**survey))
        else:
            survey = {**survey, **new, "updated_at": now}
            conn.execute(
                surveys.update()
                .where(surveys.c.decision_id == decision_id)
                .values(**new, updated_at=now)
            )
        if outcome is not None:
            filled = _filled_outcome(outcome, survey)
            if filled:
                conn.execute(
                    outcomes.update().where(outcomes.c.decision_id == decision_id).values(**filled)
                )
                outcome = {**outcome, **filled}
    state.metrics.surveys.labels(outcome="pending" if outcome is None else "recorded").inc()
    return _survey_answer(survey, outcome), True


def _filled_outcome(outcome: dict[str, Any], survey: dict[str, Any]) -> dict[str, Any]:
    """The outcome's columns to change: the survey's answers where it has none, and
    ``ve_success`` from both VES items unless the outcome's request set it."""
    filled = {
        name: survey[name]
        for name in SURVEY_ANSWERS
        if outcome[name] is None and survey[name] is not None
    }
    if (outcome["payload"] or {}).get("ve_success") is None:
        success = _top_two_box({**outcome, **filled})
        if success != outcome["ve_success"]:
            filled["ve_success"] = success
    return filled


def _survey_answer(survey: dict[str, Any], outcome: dict[str, Any] | None) -> dict[str, Any]:
    answered = survey["answered_at"]
    return {
        "decision_id": survey["decision_id"],
        "survey_id": survey["survey_id"],
        "answered_at": None if answered is None else iso_utc(answered),
        **{name: survey[name] for name in SURVEY_ANSWERS},
        "recorded_at": iso_utc(survey["recorded_at"]),
        "updated_at": iso_utc(survey["updated_at"]),
        "outcome_recorded": outcome is not None,
        "ve_success": None if outcome is None else outcome["ve_success"],
    }


class _RowView:
    """Adapter so a freshly built row dict reads like a fetched row."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._mapping = data


def _read(state: State, query: sa.Select) -> list[Any]:
    """Rows of a read for an answer; 503 (retry) when the database is unavailable."""
    with (
        unavailable_as_503("database unavailable: retry later", state.settings.retry_after_s),
        autocommit_connection(state.engine) as conn,
    ):
        return conn.execute(query).all()


_SURVEY_PREFIX = "survey_"
_WITH_OUTCOME = sa.select(
    decisions.c.response,
    decisions.c.features,
    decisions.c.occurred_at.label("contact_at"),
    outcomes,
    *(c.label(_SURVEY_PREFIX + c.name) for c in surveys.c),
).select_from(decisions.outerjoin(outcomes).outerjoin(surveys))


def _with_outcome(row: Any) -> dict[str, Any]:
    outcome = survey = None
    values = row._mapping
    if row.activity is not None:  # outer join: an outcome's columns are null without one
        outcome = {c.name: values[c.name] for c in outcomes.c}
    if values[_SURVEY_PREFIX + "decision_id"] is not None:
        survey = {c.name: values[_SURVEY_PREFIX + c.name] for c in surveys.c}
    return {
        "decision": row.response,
        "outcome": None if outcome is None else _outcome_answer(_RowView(outcome)),
        "survey": None if survey is None else _survey_answer(survey, outcome),
    }


def stored_decision(state: State, decision_id: str) -> dict[str, Any]:
    """The stored answer of a decision and its outcome (None while none is recorded)."""
    rows = _read(state, _WITH_OUTCOME.where(decisions.c.decision_id == decision_id))
    if not rows:
        raise ApiError(404, "no such decision")
    return _with_outcome(rows[0])


def customer_records(state: State, customer_id: str) -> dict[str, Any]:
    """Everything stored under a customer id, oldest first (right of access): each
    decision with the features it was made on and its outcome, and the customer's
    events. Empty lists when nothing is stored."""
    found = _read(
        state,
        _WITH_OUTCOME.where(decisions.c.customer_id == customer_id).order_by(
            decisions.c.occurred_at, decisions.c.decision_id
        ),
    )
    events = _read(
        state,
        sa.select(customer_events)
        .where(customer_events.c.customer_id == customer_id)
        .order_by(customer_events.c.occurred_at, customer_events.c.id),
    )
    return {
        "customer_id": customer_id,
        "decisions": [
            {**_with_outcome(row), "features": row.features, "occurred_at": iso_utc(row.contact_at)}
            for row in found
        ],
        "events": [
            {
                "id": row.id,
                "event_id": row.event_id,
                "type": row.type,
                "occurred_at": iso_utc(row.occurred_at),
                "value": row.value,
                "recorded_at": iso_utc(row.recorded_at),
            }
            for row in events
        ],
    }


def _existing_outcome(
    conn: sa.Connection, decision: Any, decision_id: str, body: dict[str, Any]
) -> dict[str, Any] | None:
    """The stored outcome when ``body`` would store the same values (a retry), None when
    none is stored; 409 naming the values that differ otherwise."""
    row = conn.execute(sa.select(outcomes).where(outcomes.c.decision_id == decision_id)).first()
    if row is None:
        return None
    stored = dict(row._mapping)
    facts = _outcome_facts(body, decision, _stored_survey(conn, decision_id))
    differing = _outcome_differences(stored, body, facts)
    if differing:
        raise ApiError(
            409,
            "an outcome with different values is already recorded for this decision",
            fields=differing,
            code="outcome_exists",
        )
    return _outcome_answer(row)


# -------------------------------------------------------------------- events
def record_event(
    state: State, customer_id: str, body: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    payload = _payload(body)
    event_id = body.get("event_id")
    occurred = body.get("occurred_at")
    with _not_stored_as_503(state, "event"):
        try:
            with begin_write(state.engine) as conn:
                # In the write transaction, after an erasure running meanwhile committed
                # (SQLite: one writer at a time; PostgreSQL: the customer's lock), so its
                # ledger line is read: a webhook's retry of an event the erasure deleted
                # would bring the customer back (a later event is a new record).
                lock_customer(conn, customer_id)
                now = utcnow()
                occurred_at = to_naive_utc(occurred) if occurred else now
                erased_at = state.erasures.erased_at(customer_id)
                if erased_at is not None and occurred_at <= erased_at:
                    raise ApiError(
                        409,
                        f"the customer was erased at {iso_utc(erased_at)}: an event that "
                        "happened before the erasure is not stored again",
                        code="customer_erased",
                    )
                if event_id is not None:
                    existing = _existing_event(conn, customer_id, event_id, payload)
                    if existing is not None:
                        return existing, False
                row = {
                    "event_id": event_id,
                    "customer_id": customer_id,
                    "type": body["type"],
                    "occurred_at": occurred_at,
                    "value": body.get("value"),
                    "recorded_at": now,
                    "payload": payload,
                }
                new_id = conn.execute(
                    customer_events.insert().values(**row).returning(customer_events.c.id)
                ).scalar_one()
                follows = _decisions_before(conn, customer_id, occurred_at)
        except IntegrityError:
            # The same event_id stored by a concurrent twin first (as for outcomes).
            with state.engine.connect() as conn:
                existing = _existing_event(conn, customer_id, event_id, payload)
            if existing is None:
                raise
            return existing, False
    state.metrics.events.labels(type=body["type"]).inc()
    return _event_answer(new_id, row, follows), True


def _decisions_before(conn: sa.Connection, customer_id: str, occurred_at: datetime) -> int:
    return conn.execute(
        sa.select(sa.func.count())
        .select_from(decisions)
        .where(
            decisions.c.customer_id == customer_id,
            decisions.c.occurred_at <= occurred_at,
            decisions.c.occurred_at > occurred_at - timedelta(days=EVENT_LOOKBACK_DAYS),
        )
    ).scalar_one()


def _event_answer(event_pk: int, row: dict[str, Any], follows: int) -> dict[str, Any]:
    return {
        "id": event_pk,
        "event_id": row["event_id"],
        "customer_id": row["customer_id"],
        "type": row["type"],
        "occurred_at": iso_utc(row["occurred_at"]),
        "value": row["value"],
        "recorded_at": iso_utc(row["recorded_at"]),
        "follows_decisions": follows,
    }


def _existing_event(
    conn: sa.Connection, customer_id: str, event_id: str | None, payload: dict[str, Any]
) -> dict[str, Any] | None:
    if event_id is None:
        return None
    row = conn.execute(
        sa.select(customer_events).where(
            customer_events.c.customer_id == customer_id, customer_events.c.event_id == event_id
        )
    ).first()
    if row is None:
        return None
    if not _same_payload(row.payload, payload):
        stored, given = _given(row.payload), _given(payload)
        raise ApiError(
            409,
            "event_id already used with different values",
            fields={
                name: [_recorded(stored.get(name))]
                for name in sorted({*stored, *given})
                if stored.get(name) != given.get(name)
            },
            code="event_exists",
        )
    data = dict(row._mapping)
    return _event_answer(
        data["id"], data, _decisions_before(conn, customer_id, data["occurred_at"])
    )
