"""Match one contact to an agent pool: expected value with proficiency, minus waiting.

For the suggested activity ``a`` every pool that may take the contact (activity, language,
channel, segment; ``general`` takes everything) is valued::

    EV(pool) = exp(-wait / patience) * (value_of_success * min(p_a * lift(pool, a), 0.999)
               - extra_handle_cost(a)) - wait_cost_per_s * wait,   wait = expected_wait(pool)

The wait is the platform's ``expected_wait_s`` when it sends one, 0 with an agent free,
else ``(queue_length + 1) * mean_handle_s / agents`` (``wait_capacity``: the agents the
platform reports staffed, else the pool's ``capacity``, else its members, else 1). The
contacts routed to the pool since the report (``Availability.routed_since``) count too:
each takes one of the ``agents_free`` it gave, and once none is left each joins the queue,
adding ``mean_handle_s / agents`` to the wait (to the platform's ``expected_wait_s`` as to
the estimate), until the next report describes the pool anew (a report without
``agents_free`` is taken as is: who was free is not known).

A pool the platform reports with ``agents_staffed: 0`` (nobody logged in: a night shift,
a closed site) is **unstaffed**: nobody would ever answer it, so it is never chosen nor
listed as a fallback (``general`` included), whatever else the report says, and the
reason names it. A report that leaves ``agents_staffed`` out says nothing about it: the
wait is estimated as above.

``exp(-wait / patience)`` is the chance that the customer is still there when an agent
answers (exponential abandonment, mean patience ``patience_s``): a customer who hangs up
while waiting for the better pool yields nothing, which is the main cost of waiting for a
specialist while a generalist is free (tests/test_route_sim.py).

``p_a`` is the model's success probability of the activity for this customer (it already
holds the customer's openness: the ranker predicts success given the contact's context,
so multiplying by openness again would count it twice; without a ranker the openness score
stands in for it). ``lift`` is the pool members' measured proficiency (``models.
proficiency``; 1.0 for an average agent), so a pool of proven agents is worth more.

Effortless service comes first: a pool whose expected wait passes ``max_wait_s`` is never
chosen. When every value pool is over the limit the contact goes to ``general``: with the
same activity while general answers (almost) at once (``downgrade_wait_s``: the attempt
delays no one), otherwise with the activity downgraded to a lighter one (less extra handle
time) that still pays, or to ``none``, since extra handle time in a queue makes waiting
customers wait longer; when even ``general`` is over the limit, no value attempt is made. Self-service contacts get the
digital content of the activity in the customer's language instead of a pool.

**Pool exploration** (``RoutingRules.explore_margin`` > 0; off by default). Proficiency
lifts are estimates, so a pool that is nearly as good as the best one must keep being
tried, or its estimate never improves and no other routing policy can be valued
off-policy on the log. When the pools within the wait limit whose expected value is within
``explore_margin`` of the chosen one's are more than one, the pool is drawn among them
(``pool_distribution``): weights fall linearly from 1 (the best) to 0 (a pool exactly
``explore_margin`` below), mixed with a floor so every candidate keeps at least
``explore_floor`` (as ``models.exploration`` does for activities). The draw is a pure
function of the decision id (``models.exploration.uniform_from``, salted ``route``), so a
stored decision replays exactly, and its probability is the route's ``propensity`` (1.0
when nothing was drawn; with activities explored too, the service logs the pool's chance
given the served activity over every draw that serves it: ``served_probabilities``). Only eligible pools within the wait limit are ever candidates,
only when the activity is attempted as suggested (never on a downgrade or a drop), and
self-service and ``none`` are never drawn: exploration never breaks the capacity, wait,
language or channel rules.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.activities import NONE, VALUE_ACTIVITIES
from models.economics import DEFAULT_EXTRA_HANDLE_TIME_S
from models.exploration import uniform_from
from models.pools import (
    DIGITAL_CONTENT,
    GENERAL,
    SELF_SERVICE,
    ContentCatalogue,
    Pool,
    PoolConfig,
)
from models.reasons import LIST_SEPARATOR, activity_name, language_of

MAX_P = 0.999
# A route option's ``availability`` when its fresh report says nobody is staffed.
UNSTAFFED = "unstaffed"


@dataclass(frozen=True)
class Availability:
    """What the contact-center platform last reported for a pool."""

    agents_free: int | None = None
    queue_length: int | None = None
    expected_wait_s: float | None = None
    # Agents logged in to the pool's queue (busy or free): how many the queue drains to.
    agents_staffed: int | None = None
    stale: bool = False  # older than the TTL: ignored, the pool counts as unknown
    # Contacts routed to the pool since the report: the report does not know them, yet
    # each took a free agent or joined the queue (without them a pool reported with one
    # agent free was valued as free for every contact until the next report).
    routed_since: int = 0

    @property
    def unstaffed(self) -> bool:
        """A fresh report of nobody logged in (``agents_staffed`` 0, not left out)."""
        return not self.stale and self.agents_staffed == 0

    @classmethod
    def of_report(
        cls, report: Mapping[str, Any], stale: bool, routed_since: int = 0
    ) -> Availability:
        """A stored availability report (its ``agents_free``, ``queue_length``,
        ``expected_wait_s`` and ``agents_staffed``), with the contacts routed to the pool
        since it was made."""
        return cls(
            agents_free=report["agents_free"],
            queue_length=report["queue_length"],
            expected_wait_s=report["expected_wait_s"],
            agents_staffed=report["agents_staffed"],
            stale=stale,
            routed_since=routed_since,
        )


@dataclass(frozen=True)
class RoutingRules:
    # Economics of the serving model (value of a success, price of an agent's second).
    value_of_success: float = 20.0
    cost_per_second: float = 0.02
    extra_handle_time_s: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_EXTRA_HANDLE_TIME_S)
    )
    # What one second of a customer's wait costs, in the unit of value_of_success.
    wait_cost_per_s: float = 0.02
    # Never route to a pool whose expected wait passes this (effortless service first).
    max_wait_s: float = 60.0
    # On a capacity fallback to general, keep the activity while general's expected wait
    # is at most this; above it the activity is downgraded (its extra handle time would
    # lengthen the queue), above max_wait_s no value attempt is made.
    downgrade_wait_s: float = 30.0
    # Mean handle time, to estimate a wait from the queue when the platform sends none.
    mean_handle_s: float = 420.0
    # Customers' mean patience in a queue: a customer who waits w seconds is still there
    # with probability exp(-w / patience) (exponential abandonment), and one who hung up
    # yields no success. None: abandonment ignored (the wait cost alone prices waiting).
    patience_s: float | None = 180.0
    # Pool exploration: pools within the wait limit whose expected value is within
    # `explore_margin` (value units) of the chosen pool's are drawn among, each with at
    # least `explore_floor` probability. 0: always the best pool (propensity 1).
    explore_margin: float = 0.0
    explore_floor: float = 0.05

    def __post_init__(self) -> None:
        if not self.explore_margin >= 0.0:
            raise ValueError("pool exploration margin must be >= 0")
        if not 0.0 < self.explore_floor <= 0.5:
            raise ValueError("pool exploration floor must be in (0, 0.5]")


_TEXT = {
    "en": {
        "self_service": "self-service channel: digital content “{title}” for “{activity}”",
        "self_service_no_content": "self-service channel: no digital content in the "
        "catalogue for “{activity}”",
        "none": "no value attempt: effortless resolution",
        "holdout": "randomized control group (holdout): no value attempt, so the value of "
        "the suggestions can be measured; resolve effortlessly",
        "chosen": "{pool}: highest expected value for “{activity}” ({ev:.2f}; proficiency "
        "lift {lift:.2f}; {wait})",
        "general_only": "no value pool with qualified agents serves “{activity}” for this "
        "contact: {pool} pool ({wait})",
        "over_limit": "{pools} over the {limit:.0f} s wait limit",
        "worth_less": "{pools}: lower expected value for this contact (proficiency lift, wait "
        "and the chance the customer hangs up counted)",
        "worth_same": "{pools}: the same expected value for this contact (on a tie the pool "
        "listed first in the config takes it)",
        "fallback_free": "every value pool is over the {limit:.0f} s wait limit: {pool} "
        "pool, which is free (or nearly), with “{activity}”",
        "downgraded": "every value pool is over the {limit:.0f} s wait limit: {pool} pool "
        "with the lighter “{activity}” instead of “{original}”, so the customer does not "
        "wait longer for a value conversation",
        "dropped": "every value pool is over the {limit:.0f} s wait limit: {pool} pool, no "
        "value attempt (no lighter activity pays), so the customer does not wait longer for "
        "a value conversation",
        "general_busy": "{pool} pool over the {limit:.0f} s wait limit too: no value "
        "attempt, resolve as fast as possible",
        "unstaffed": "{pools}: no agent logged in (the platform reports 0 staffed)",
        "fallback_free_unstaffed": "no value pool can take the contact now: {pool} pool, "
        "which is free (or nearly), with “{activity}”",
        "lighter": "the pools for “{original}” are over the {limit:.0f} s wait limit: the "
        "lighter “{activity}” instead, so the customer does not wait longer for a value "
        "conversation",
        "lighter_unstaffed": "no pool for “{original}” can take the contact now: the lighter "
        "“{activity}” instead, so the customer does not wait longer for a value conversation",
        "downgraded_unstaffed": "no value pool can take the contact now: {pool} pool with the "
        "lighter “{activity}” instead of “{original}”, so the customer does not wait longer "
        "for a value conversation",
        "dropped_unstaffed": "no value pool can take the contact now: {pool} pool, no value "
        "attempt (no lighter activity pays), so the customer does not wait longer for a "
        "value conversation",
        "general_unstaffed": "no agent logged in to the {pool} pool (the platform reports 0 "
        "staffed): no value attempt",
        "wait": "expected wait {seconds:.0f} s",
        "wait_unknown": "wait unknown",
        "wait_stale": "availability stale, wait unknown",
        "drawn": "pool drawn among near-equal pools ({pools}; expected values within "
        "{margin:.2f}): {pool} with probability {p:.3f}",
        "drawn_pool": "{pool}: expected value {ev:.2f} for “{activity}” (proficiency lift "
        "{lift:.2f}; {wait})",
    },
    "ja": {
        "self_service": "セルフサービス: 「{activity}」のデジタルコンテンツ「{title}」を案内",
        "self_service_no_content": "セルフサービス: 「{activity}」のデジタルコンテンツはカタログになし",
        "none": "価値向上の提案なし: 手間なく解決",
        "holdout": "効果測定のための対照群（ランダム割付）のお客様です。価値向上の提案は行わず、"
        "手間なく解決",
        "chosen": "「{pool}」プール: 「{activity}」の期待価値が最大（金額換算 {ev:.2f}、習熟度リフト "
        "{lift:.2f}、{wait}）",
        "general_only": "「{activity}」で実績のあるエージェントのプールがないため、「{pool}」プールへ"
        "（{wait}）",
        "over_limit": "{pools}は待ち時間の上限{limit:.0f}秒を超過",
        "worth_less": "{pools}はこの問い合わせでは期待価値が低い（習熟度リフト、待ち時間、"
        "お客様が待ちきれずに切る可能性を考慮）",
        "worth_same": "{pools}はこの問い合わせでの期待価値が同じ（同じ場合は設定で先に記載された"
        "プールへ）",
        "fallback_free": "価値向上プールがすべて待ち時間の上限{limit:.0f}秒を超えるため、"
        "すぐ対応できる「{pool}」プールで「{activity}」を提案",
        "downgraded": "価値向上プールがすべて待ち時間の上限{limit:.0f}秒を超えるため、「{pool}」"
        "プールで「{original}」の代わりに軽い「{activity}」を提案（提案のためにお客様を待たせない）",
        "dropped": "価値向上プールがすべて待ち時間の上限{limit:.0f}秒を超えるため、「{pool}」"
        "プールで価値向上の提案なし（提案のためにお客様を待たせない）",
        "general_busy": "「{pool}」プールも待ち時間の上限{limit:.0f}秒を超過: 価値向上の提案はせず、手間なく解決",
        "unstaffed": "{pools}はログイン中のエージェントが0人（プラットフォームの報告）",
        "fallback_free_unstaffed": "対応できる価値向上プールがないため、すぐ対応できる「{pool}」"
        "プールで「{activity}」を提案",
        "lighter": "「{original}」のプールがすべて待ち時間の上限{limit:.0f}秒を超えるため、"
        "軽い「{activity}」を提案（提案のためにお客様を待たせない）",
        "lighter_unstaffed": "「{original}」に対応できるプールがないため、軽い「{activity}」を"
        "提案（提案のためにお客様を待たせない）",
        "downgraded_unstaffed": "対応できる価値向上プールがないため、「{pool}」プールで"
        "「{original}」の代わりに軽い「{activity}」を提案（提案のためにお客様を待たせない）",
        "dropped_unstaffed": "対応できる価値向上プールがないため、「{pool}」プールで価値向上の"
        "提案なし（提案のためにお客様を待たせない）",
        "general_unstaffed": "「{pool}」プールはログイン中のエージェントが0人（プラットフォームの"
        "報告）: 価値向上の提案なし",
        "wait": "予想待ち時間{seconds:.0f}秒",
        "wait_unknown": "待ち時間不明",
        "wait_stale": "空き状況が古いため待ち時間不明",
        "drawn": "期待価値の差が {margin:.2f} 以内のプール（{pools}）から抽選: {pool}（確率 {p:.3f}）",
        "drawn_pool": "「{pool}」プール: 「{activity}」の期待価値 {ev:.2f}（習熟度リフト {lift:.2f}、{wait}）",
    },
}

# Pool id -> display name, per config and reason language (``en``/``ja``). Built once per
# config (a few per process: one per stored change), so a decision only looks names up:
# the serving path stays at its cost. The config is kept with its names so a new config
# that happens to reuse a freed object's id is never read with the old names.
_NAMES: dict[tuple[int, str], tuple[PoolConfig, dict[str, str]]] = {}
_NAMES_KEPT = 8


def pool_names(config: PoolConfig, language: str) -> dict[str, str]:
    """``{pool id: display name}`` for a reader of ``language`` (``en`` or ``ja``): the
    pool's name in it, else in English, else the id (``models.pools.name_in``)."""
    found = _NAMES.get((id(config), language))
    if found is not None and found[0] is config:
        return found[1]
    names = {pool.id: pool.display_name(language) for pool in config.pools}
    if len(_NAMES) >= _NAMES_KEPT:
        _NAMES.clear()  # configs change rarely: dropping old ones costs one rebuild each
    _NAMES[(id(config), language)] = (config, names)
    return names


_said = activity_name


def wait_capacity(pool: Pool, status: Availability | None) -> int:
    """How many agents work ``pool``'s queue, to estimate a wait from its length: the
    platform's fresh ``agents_staffed`` (it knows who is logged in; 0 when it says nobody
    is), else the pool's configured ``capacity``, else its listed members, else 1.

    ``general`` lists no members (every agent answers it), so without a staffed count or a
    capacity it counts as one agent: its queue then reads as a long wait."""
    if status is not None and not status.stale and status.agents_staffed is not None:
        return int(status.agents_staffed)
    if pool.capacity is not None and pool.capacity > 0:
        return pool.capacity
    return max(len(pool.members), 1)


def expected_wait(pool: Pool, status: Availability | None, rules: RoutingRules) -> float | None:
    """Seconds a new contact would wait for ``pool``, or None when unknown (no report, or
    the last report expired); ``math.inf`` when the platform reports nobody staffed (the
    pool is unstaffed: no estimate of its own can make that wait end). Without the
    platform's own estimate, the contacts ahead (the queue and this one) are shared among
    the agents of ``wait_capacity``.

    The ``routed_since`` contacts take the free agents the report gave first; the rest
    wait ahead of this one, each ``mean_handle_s / wait_capacity`` longer. A report that
    leaves ``agents_free`` out is taken as is (who was free is not known)."""
    if status is None or status.stale:
        return None
    if status.unstaffed:
        return math.inf
    free = status.agents_free
    if free is not None and free > status.routed_since:
        # An agent the report gave as free is still free: no contact routed since took it.
        return float(status.expected_wait_s) if status.expected_wait_s is not None else 0.0
    # Routed since the report beyond its free agents: queued ahead of this contact.
    ahead = status.routed_since - free if free is not None else 0
    per_contact = rules.mean_handle_s / wait_capacity(pool, status)
    if status.expected_wait_s is not None:
        # The platform's wait is for a contact arriving at its report, when agents were
        # free (if any were): the first contact past them waits for an agent to finish.
        return float(status.expected_wait_s) + (ahead + (1 if free else 0)) * per_contact
    if status.queue_length is not None or free is not None:
        # "No agent free" without a queue length is an empty queue, not an unknown wait:
        # read as unknown, a full pool was valued as free and kept getting customers.
        return ((status.queue_length or 0) + ahead + 1) * per_contact
    return None


def _probabilities(activities: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    return {item["activity"]: item.get("success_probability") for item in activities}


def route(
    config: PoolConfig,
    *,
    activity: str,
    activities: Sequence[Mapping[str, Any]],
    openness: float,
    channel: str | None,
    language: str | None,
    segment: str | None,
    availability: Mapping[str, Availability],
    rules: RoutingRules,
    catalogue: ContentCatalogue | None = None,
    blocked: Collection[str] = (),
    none_value: float = 0.0,
    decision_id: str | None = None,
    reason_language: str | None = None,
    holdout: bool = False,
) -> dict[str, Any]:
    """The route of one contact: ``{pool, pool_name, reason, fallbacks, activity,
    expected_value, expected_wait_s, ranked, content, propensity, pool_probabilities}``;
    ``activity`` differs from the suggested one only when a capacity fallback downgraded
    it. ``pool_name`` is the pool's display name in the reason's language, as the reason
    names it (None for digital content).

    ``propensity`` is the probability that this pool was chosen (1.0 unless pool
    exploration drew it among near-equal pools) and ``pool_probabilities`` the whole
    distribution it was drawn from. With ``rules.explore_margin`` > 0 the draw needs the
    ``decision_id`` (the same id always draws the same pool).

    ``language`` is the customer's (pools and content in it); ``reason`` is written in
    ``reason_language``, the agent's (default: the customer's). ``holdout``: the customer
    is in the experiment's control group (their ``none`` is the experiment's, not the
    model's choice, and the reason says so)."""
    answer = _best_route(
        config,
        activity=activity,
        activities=activities,
        openness=openness,
        channel=channel,
        language=language,
        segment=segment,
        availability=availability,
        rules=rules,
        catalogue=catalogue,
        blocked=blocked,
        none_value=none_value,
        reason_language=reason_language,
        holdout=holdout,
    )
    dist = pool_distribution(answer, activity, rules)
    if len(dist) <= 1:
        return answer
    if decision_id is None:
        raise ValueError("pool exploration needs the decision id")
    pool = draw_pool(decision_id, dist)
    p = dist[pool]
    said = language_of(reason_language or language)
    text, names = _TEXT[said], pool_names(config, said)
    drawn = text["drawn"].format(
        pools=LIST_SEPARATOR[said].join(names[o] for o in dist),
        margin=rules.explore_margin,
        pool=names[pool],
        p=p,
    )
    if pool == answer["pool"]:
        return {**answer, "reason": f"{drawn}; {answer['reason']}", "propensity": p,
                "pool_probabilities": dist}  # fmt: skip
    ranked = answer["ranked"]
    option = next(o for o in ranked if o["pool"] == pool)
    # Not the best pool: "highest expected value" would contradict the draw just named.
    detail = text["drawn_pool"].format(
        pool=names[pool],
        activity=_said(activity, reason_language or language),
        ev=option["expected_value"],
        lift=option["lift"],
        wait=_wait_text(text, option),
    )
    return _answer(
        pool,
        names[pool],
        f"{drawn}; {detail}",
        activity=activity,
        fallbacks=_fallbacks(ranked, pool),
        expected_value=option["expected_value"],
        expected_wait_s=option["expected_wait_s"],
        ranked=ranked,
        propensity=p,
        pool_probabilities=dist,
    )


def pool_distribution(
    answer: Mapping[str, Any], activity: str, rules: RoutingRules
) -> dict[str, float]:
    """Probability of each pool the contact may be drawn to, in rank order, given the
    deterministic best route ``answer``.

    Candidates are the ranked pools within the wait limit whose expected value is within
    ``rules.explore_margin`` of the chosen pool's (the chosen pool is the best of those
    within the limit). Nothing is drawn (``{chosen: 1.0}``) with the margin at 0, for
    self-service, for ``none`` and when a capacity fallback changed the activity. Weights
    fall linearly from 1 (the best) to 0 (exactly ``margin`` below) and are mixed with the
    floor: ``p = f + (1 - k f) w / sum(w)`` with ``f = min(explore_floor, 1 / k)``.
    """
    chosen = answer["pool"]
    best = answer.get("expected_value")
    margin = rules.explore_margin
    if (
        margin <= 0.0
        or best is None
        or activity == NONE
        or answer.get("activity") != activity
        or chosen in (DIGITAL_CONTENT,)
    ):
        return {chosen: 1.0}
    candidates = [
        o
        for o in answer.get("ranked") or []
        if o["within_limit"]
        and o["expected_value"] is not None
        and (o["pool"] == chosen or o["expected_value"] >= best - margin)
    ]
    if len(candidates) <= 1:
        return {chosen: 1.0}
    top = max(o["expected_value"] for o in candidates)
    weights = [max(0.0, 1.0 - (top - o["expected_value"]) / margin) for o in candidates]
    total = sum(weights)
    k = len(candidates)
    floor = min(rules.explore_floor, 1.0 / k)
    probs = [floor + (1.0 - k * floor) * w / total for w in weights]
    norm = sum(probs)
    return {o["pool"]: p / norm for o, p in zip(candidates, probs, strict=True)}


def served_probabilities(
    draws: Sequence[tuple[float, Mapping[str, Any]]], served: str
) -> tuple[float, dict[str, float]]:
    """The probability that ``served`` was served and that of each pool given it, over
    the activity draws ``(p, route)``: each possible draw with its probability and the
    route it would get. A capacity fallback can turn several draws into the served
    activity, each with its own pools (a drawn activity's value pool; another's general
    pool): the pool's probability given the drawn activity alone is then not the chance
    of the logged pair, which off-policy evaluation weighs by."""
    served_p = 0.0
    joint: dict[str, float] = {}
    for p, route in draws:
        if p <= 0.0 or route["activity"] != served:
            continue
        served_p += p
        for pool, q in (route.get("pool_probabilities") or {route["pool"]: 1.0}).items():
            joint[pool] = joint.get(pool, 0.0) + p * q
    return served_p, {pool: q / served_p for pool, q in joint.items()} if served_p else {}


def draw_pool(decision_id: str, distribution: Mapping[str, float]) -> str:
    """The pool drawn for a decision: a pure function of the decision id (salted
    ``route``, so it is independent of the activity's draw)."""
    u = uniform_from(decision_id, "route")
    cumulative = 0.0
    for pool, p in distribution.items():
        cumulative += p
        if p > 0.0 and u < cumulative:
            return pool
    return [pool for pool, p in distribution.items() if p > 0.0][-1]


def _best_route(
    config: PoolConfig,
    *,
    activity: str,
    activities: Sequence[Mapping[str, Any]],
    openness: float,
    channel: str | None,
    language: str | None,
    segment: str | None,
    availability: Mapping[str, Availability],
    rules: RoutingRules,
    catalogue: ContentCatalogue | None = None,
    blocked: Collection[str] = (),
    none_value: float = 0.0,
    reason_language: str | None = None,
    holdout: bool = False,
) -> dict[str, Any]:
    """The deterministic route: the best pool by the rules above (no exploration)."""
    said = language_of(reason_language or language)
    # Reasons name pools as the agent's pages do: by display name in their language.
    text, names = _TEXT[said], pool_names(config, said)
    # A holdout customer's `none` is the experiment's: saying "effortless resolution" as
    # for the model's own `none` would read as if the model chose not to attempt.
    no_attempt = text["holdout"] if holdout and activity == NONE else text["none"]
    if channel == SELF_SERVICE:
        named = _said(activity, reason_language or language)
        item = catalogue.find(activity, language) if catalogue is not None else None
        content = (
            {"id": item.content_id, "title": item.title, "language": item.language}
            if item
            else None
        )
        return _answer(
            DIGITAL_CONTENT,
            None,
            (
                text["self_service"].format(activity=named, title=content["title"])
                if content
                else text["self_service_no_content"].format(activity=named)
            )
            if activity != NONE
            else no_attempt,
            activity=activity,
            content=content,
        )

    by_id = config.by_id()
    general = by_id[GENERAL]
    general_wait = expected_wait(general, availability.get(GENERAL), rules)
    if activity == NONE:
        option = _option(general, None, general_wait, availability, 1.0)
        option["within_limit"] = option["availability"] != UNSTAFFED
        reason = no_attempt
        if option["availability"] == UNSTAFFED:
            # Nowhere else to send it (value pools take value activities), but the agent
            # and the platform are told that nobody answers general now.
            reason += "; " + text["unstaffed"].format(pools=names[GENERAL])
        return _answer(
            GENERAL,
            names[GENERAL],
            reason,
            activity=NONE,
            expected_wait_s=option["expected_wait_s"],
            ranked=[option],
        )

    p = _probabilities(activities).get(activity)
    p = float(openness) if p is None else float(p)
    cost = rules.extra_handle_time_s.get(activity, 0.0) * rules.cost_per_second
    ranked: list[dict[str, Any]] = []
    for pool in config.pools:
        if not pool.serves(activity, channel, language, segment):
            continue
        if pool.id != GENERAL and not pool.members:
            continue  # nobody has qualified yet: not a pool a contact can go to
        lift = 1.0 if pool.id == GENERAL else pool.lift_for(activity)
        wait = general_wait if pool.id == GENERAL else None
        if pool.id != GENERAL:
            wait = expected_wait(pool, availability.get(pool.id), rules)
        if wait == math.inf:  # unstaffed: no value, as no customer there is ever answered
            ranked.append(_option(pool, None, wait, availability, lift))
            continue
        value = _still_there(wait, rules) * (
            rules.value_of_success * min(p * lift, MAX_P) - cost
        ) - rules.wait_cost_per_s * (wait or 0.0)
        ranked.append(_option(pool, value, wait, availability, lift))
    # Highest value first, unstaffed pools (no value) last; on a tie the pool listed first
    # in the config (stable sort).
    ranked.sort(key=lambda o: (o["expected_value"] is None, -(o["expected_value"] or 0.0)))
    for option in ranked:
        option["within_limit"] = option["availability"] != UNSTAFFED and (
            option["expected_wait_s"] is None or option["expected_wait_s"] <= rules.max_wait_s
        )

    chosen = next((o for o in ranked if o["within_limit"] and o["pool"] != GENERAL), None)
    unstaffed = [o["pool"] for o in ranked if o["availability"] == UNSTAFFED]
    over = [
        o["pool"]
        for o in ranked
        if not o["within_limit"] and o["pool"] != GENERAL and o["pool"] not in unstaffed
    ]
    general_option = next(o for o in ranked if o["pool"] == GENERAL)
    if chosen is not None and not general_option["within_limit"]:
        # General is worth more only by a value a customer over the wait limit would not
        # get: a pool within the limit takes the contact (general would make no attempt
        # and keep the customer waiting).
        if ranked.index(general_option) < ranked.index(chosen):
            over.append(GENERAL)
    elif chosen is not None and ranked.index(general_option) < ranked.index(chosen):
        chosen = None

    def chosen_reason(
        option: dict[str, Any], worth_less: list[str], worth_same: Sequence[str] = ()
    ) -> str:
        """Why ``option`` takes the contact, naming the pools worth less, those worth the
        same (it came first on the tie) and those over the wait limit (joined with "; ",
        as routing reasons are)."""
        parts = [
            text["chosen"].format(
                pool=names[option["pool"]],
                activity=_said(activity, reason_language or language),
                ev=option["expected_value"],
                lift=option["lift"],
                wait=_wait_text(text, option),
            )
        ]
        parts += detail_parts(
            ("worth_less", worth_less), ("worth_same", list(worth_same)), ("over_limit", over)
        )
        # General too when nobody staffs it: why it is no fallback of this route.
        parts += detail_parts(("unstaffed", unstaffed))
        return "; ".join(parts)

    def detail_parts(*lists: tuple[str, list[str]]) -> list[str]:
        """A sentence per non-empty list of pools (``worth_less``, ``worth_same``,
        ``over_limit``, ``unstaffed``), naming them in the reason's language."""
        return [
            text[key].format(
                pools=LIST_SEPARATOR[said].join(names[o] for o in pools), limit=rules.max_wait_s
            )
            for key, pools in lists
            if pools
        ]

    if chosen is not None:
        reason = chosen_reason(chosen, [])
        return _answer(
            chosen["pool"],
            names[chosen["pool"]],
            reason,
            activity=activity,
            fallbacks=_fallbacks(ranked, chosen["pool"]),
            expected_value=chosen["expected_value"],
            expected_wait_s=chosen["expected_wait_s"],
            ranked=ranked,
        )

    # General: either it is simply the best place, or every better pool is too busy.
    # A capacity fallback: a value pool would beat general if it were not over the limit.
    capacity_fallback = any(
        not o["within_limit"] and o["lift"] > general_option["lift"]
        for o in ranked
        if o["pool"] != GENERAL
    )
    # Value pools nobody staffs: the fallback sentences say "no value pool can take the
    # contact now" (not "every value pool is over the wait limit") and name them.
    value_unstaffed = [o for o in unstaffed if o != GENERAL]
    variant = "_unstaffed" if value_unstaffed else ""
    # Which pools are unstaffed and which over the limit, after a sentence that does not
    # say it already (the over-limit-only sentences do).
    details = detail_parts(("unstaffed", value_unstaffed), ("over_limit", over)) if variant else []
    final, reason, general_name = activity, None, names[GENERAL]
    if general_option["availability"] == UNSTAFFED:
        final = NONE
        reason = text["general_unstaffed"].format(pool=general_name)
        details = detail_parts(("unstaffed", value_unstaffed), ("over_limit", over))
    elif not general_option["within_limit"]:
        final = NONE
        reason = text["general_busy"].format(pool=general_name, limit=rules.max_wait_s)
    elif capacity_fallback and (general_option["expected_wait_s"] or 0.0) <= rules.downgrade_wait_s:
        # General takes the contact (almost) at once: the attempt's extra handle time
        # barely delays anyone, keep the activity.
        reason = text["fallback_free" + variant].format(
            pool=general_name,
            limit=rules.max_wait_s,
            activity=_said(activity, reason_language or language),
        )
    elif capacity_fallback:
        # General has a queue too: extra handle time would make waiting customers wait
        # longer, so only a lighter activity (or none).
        final = _lighter_activity(activity, activities, rules, blocked, none_value)
        if final != NONE:
            # A value pool may take the lighter activity at once (its own pools, better
            # agents for it): general's queue only when none does.
            lighter = _best_route(
                config,
                activity=final,
                activities=activities,
                openness=openness,
                channel=channel,
                language=language,
                segment=segment,
                availability=availability,
                rules=rules,
                catalogue=catalogue,
                blocked=blocked,
                none_value=none_value,
                reason_language=reason_language,
                holdout=holdout,
            )
            if lighter["pool"] != GENERAL:
                why = text["lighter" + variant].format(
                    limit=rules.max_wait_s,
                    activity=_said(final, reason_language or language),
                    original=_said(activity, reason_language or language),
                )
                return {**lighter, "reason": "; ".join([why, *details, lighter["reason"]])}
        reason = (
            text["downgraded" + variant].format(
                pool=general_name,
                limit=rules.max_wait_s,
                activity=_said(final, reason_language or language),
                original=_said(activity, reason_language or language),
            )
            if final != NONE
            else text["dropped" + variant].format(pool=general_name, limit=rules.max_wait_s)
        )
    elif len(ranked) == 1:
        reason = text["general_only"].format(
            pool=general_name,
            activity=_said(activity, reason_language or language),
            wait=_wait_text(text, general_option),
        )
    else:
        # Value pools serve the contact, general is simply worth more here: saying none
        # serves it would send a manager looking for a pool that exists.
        others = [o for o in ranked if o["within_limit"] and o["pool"] != GENERAL]
        # A pool of exactly general's value (values are rounded alike, _option) lost only
        # the tie: "lower expected value" would be untrue.
        same = [
            o["pool"] for o in others if o["expected_value"] == general_option["expected_value"]
        ]
        worth_less = [o["pool"] for o in others if o["pool"] not in same]
        reason = chosen_reason(general_option, worth_less, same)
        details = []  # chosen_reason names the pools over the limit and unstaffed
    return _answer(
        GENERAL,
        general_name,
        "; ".join([reason, *details]),
        activity=final,
        fallbacks=[],
        expected_value=general_option["expected_value"] if final == activity else None,
        expected_wait_s=general_option["expected_wait_s"],
        ranked=ranked,
    )


def _still_there(wait: float | None, rules: RoutingRules) -> float:
    """Probability that a customer expected to wait ``wait`` seconds is still in the queue
    when an agent answers (1.0 with no wait, an unknown wait or no patience model)."""
    if not wait or rules.patience_s is None or rules.patience_s <= 0:
        return 1.0
    return math.exp(-max(wait, 0.0) / rules.patience_s)


def _lighter_activity(
    activity: str,
    activities: Sequence[Mapping[str, Any]],
    rules: RoutingRules,
    blocked: Collection[str],
    none_value: float,
) -> str:
    """The activity with the best positive expected value (over ``none``) among those
    that take less extra handle time than ``activity``; ``none`` if there is none."""
    limit = rules.extra_handle_time_s.get(activity, 0.0)
    best, best_value = NONE, none_value
    for item in activities:
        name, value = item["activity"], item.get("expected_value")
        if name not in VALUE_ACTIVITIES or name == activity or name in blocked or value is None:
            continue
        if rules.extra_handle_time_s.get(name, 0.0) >= limit:
            continue
        if value > best_value:
            best, best_value = name, value
    return best


def _option(
    pool: Pool,
    value: float | None,
    wait: float | None,
    availability: Mapping[str, Availability],
    lift: float,
) -> dict[str, Any]:
    status = availability.get(pool.id)
    if status is None:
        said = "unknown"
    else:
        said = "stale" if status.stale else (UNSTAFFED if status.unstaffed else "fresh")
    return {
        "pool": pool.id,
        "expected_value": None if value is None else round(value, 6),
        "lift": round(lift, 4),
        # An unstaffed pool's wait has no end: said by its availability, not as a number.
        "expected_wait_s": None if wait is None or wait == math.inf else round(wait, 3),
        "availability": said,
        "within_limit": True,
    }


def _wait_text(text: dict[str, str], option: Mapping[str, Any]) -> str:
    if option["expected_wait_s"] is not None:
        return text["wait"].format(seconds=option["expected_wait_s"])
    return text["wait_stale"] if option["availability"] == "stale" else text["wait_unknown"]


def _fallbacks(ranked: list[dict[str, Any]], chosen: str) -> list[str]:
    """The other pools within the wait limit in rank order, ``general`` last unless nobody
    staffs it (unstaffed pools are never a fallback); none for ``general`` itself, which
    every agent answers (as a drawn pool too).

    A pool ranked below general (within the limit) is no fallback: listed before general,
    it sent the customer to a longer wait or weaker agents than general offers at once."""
    if chosen == GENERAL:
        return []
    rest = []
    general_staffed = True
    for option in ranked:
        if option["pool"] == GENERAL:
            general_staffed = option["availability"] != UNSTAFFED
            if option["within_limit"]:
                break
        elif option["within_limit"] and option["pool"] != chosen:
            rest.append(option["pool"])
    return [*rest, GENERAL] if general_staffed else rest


def _answer(
    pool: str,
    pool_name: str | None,
    reason: str,
    *,
    activity: str,
    fallbacks: list[str] | None = None,
    expected_value: float | None = None,
    expected_wait_s: float | None = None,
    ranked: list[dict[str, Any]] | None = None,
    content: dict[str, str] | None = None,
    propensity: float = 1.0,
    pool_probabilities: dict[str, float] | None = None,
) -> dict[str, Any]:
    return {
        "pool": pool,
        "pool_name": pool_name,  # the reason's language; None for digital content
        "reason": reason,
        "fallbacks": fallbacks or [],
        "activity": activity,
        "expected_value": expected_value,
        "expected_wait_s": expected_wait_s,
        "ranked": ranked or [],
        "content": content,
        "propensity": propensity,
        "pool_probabilities": pool_probabilities or {pool: 1.0},
    }
