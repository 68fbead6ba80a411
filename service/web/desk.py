"""The agent desk (``/desk``): what an agent sees beside a live conversation.

The contact-center desktop opens it in a narrow side panel with the interaction's
details in the query string (the same fields as ``POST /v1/decisions``), or with the
``decision_id`` of a decision it already asked for. The page decides through the same
use case as the API (so the decision is stored and idempotent on ``interaction_id``)
and records the outcome through the same use case as the outcome endpoint.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import Blueprint, jsonify, redirect, render_template, request, session, url_for
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.datastructures import MultiDict

from models import contact_policy, elapsed, fallback, matching
from models.decision import Decider
from models.fallback import FALLBACK_VERSION, decide_fallback
from models.pools import DIGITAL_CONTENT, Pool, PoolConfig
from models.reasons import (
    ACTIVITY_NAMES,
    CATEGORY_IDS,
    category_name,
    describe,
    language_of,
    listed,
)
from models.schema import LANGUAGE_TAG_HINT
from service import decisions as use_cases
from service.db import READ_ONLY, decisions, is_unavailable, iso_utc, outcomes
from service.errors import ApiError
from service.logs import error_summary
from service.schemas import (
    DATE_RANGE_MESSAGE,
    DecisionRequestSchema,
    OutcomeRequestSchema,
    has_control_characters,
)
from service.serving import build_decider
from service.state import state
from service.web import content
from service.web.session import (
    CSRF_FIELD,
    POSTED_FORM_PARAMETER,
    confirmed,
    csrf_ok,
    from_other_site,
    from_untrusted_site,
    is_unconfirmed,
    mark_unconfirmed,
    page_access,
    request_origin,
    take_posted_form,
)

log = logging.getLogger("vea.desk")

# Built once: a schema compiles its fast loading path on first use (service.fast_load).
DECISION_REQUEST = DecisionRequestSchema()
OUTCOME_REQUEST = OutcomeRequestSchema()

CUSTOMER_FIELDS = ("segment", "persona", "tenure_months", "switching_effort", "prior_contacts_30d")
CONTACT_FIELDS = ("channel", "issue_type", "sentiment", "occurred_at")
INTEGER_FIELDS = {"prior_contacts_30d"}
FLOAT_FIELDS = {"tenure_months", "sentiment"}  # the API takes JSON numbers, not text
REQUIRED = ("interaction_id", "customer_id", "channel")
# What a desk link may name about the contact, in the order the confirmation page lists
# them and posts them back.
# Built from the lists the decision is read with, so a field added there travels too.
LINK_FIELDS = tuple(
    dict.fromkeys((*REQUIRED, *CONTACT_FIELDS, *CUSTOMER_FIELDS, "customer_language", "agent_id"))
)
# What each outcome button means for the outcome endpoint's two booleans.
STATUSES: dict[str, dict[str, bool | None]] = {
    "offered": {"offered": True, "accepted": None},
    "accepted": {"offered": True, "accepted": True},
    "declined": {"offered": True, "accepted": False},
    "skipped": {"offered": False, "accepted": None},
}


# The desk's own wording beyond the pages' shared labels (service.web.content): what the
# agent is told when something fails, in the page's language (the API's messages are
# English). ``{field}`` and ``{seconds}`` are filled in by desk.js.
DESK_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "db_down_title": "The database is unavailable",
        "db_down": "This decision cannot be opened right now. Try again in a minute.",
        "idle_title": "No contact open",
        "idle": "The hint for a contact shows here when the desktop opens it.",
        "not_found_title": "No such decision",
        "form_gone": "The details of this contact are no longer here (this page was already "
        "opened, or the browser was closed since): open the contact again from the desktop.",
        "not_found": "This link names a decision that does not exist (an old or mistyped "
        "link): open the contact again from the desktop.",
        "conflict_title": "This contact cannot be shown",
        "unstored": "This decision was not stored (database unavailable), so its outcome "
        "cannot be recorded here. Follow the hint as usual.",
        "err_session": "Your session has expired: nothing was recorded. Sign in again: you "
        "come back to this page with your entries, then press Record.",
        "err_sign_in": "Sign in again",
        "err_csrf": "This page is out of date: nothing was recorded. Reload it; your entries "
        "are kept.",
        "err_changed": "The suggestion changed since this page was opened: nothing was "
        "recorded. Reload the page and record again.",
        "err_exists": "A different outcome is already recorded for this contact (another tab "
        "or window?): yours was not recorded.",
        "err_show_recorded": "Show what is recorded",
        "err_survey": "The customer's survey already gave other answers for {field}: nothing "
        "was recorded. Record without yours there: the survey's answers are kept.",
        # The button beside that message: clears those VES items and records.
        "survey_record": "Record without them",
        "err_invalid": "Not recorded: check {field}.",
        "err_refused": "Not recorded: the service refused these entries (error {status}). "
        "Check them and record again; they are kept.",
        "err_busy": "Too many requests: nothing was recorded. Press Record again in "
        "{seconds} s; your entries are kept.",
        "err_down": "The database is unavailable: nothing was recorded. Press Record again "
        "in a minute; your entries are kept.",
        # Without an answer the post may still have been stored (the connection dropped
        # after it): a second press is safe, the same outcome is never stored twice.
        "err_offline": "No connection to the server: the outcome may not have been "
        "recorded. Press Record again (it is never stored twice); your entries are kept.",
        "err_no_answer": "The server did not answer: the outcome may not have been recorded. "
        "Press Record again (it is never stored twice); your entries are kept.",
        "err_other": "Not recorded (error {status}). Press Record again; your entries are kept.",
        "recording": "Recording…",
        "already": "Recorded earlier: {outcome}.",
        "recorded_at": "Recorded",
        "score_title": "Chance that a value conversation succeeds, out of 100",
        "digital_content": "Digital content",
        "not_whole": "{name}: not a whole number",
        "not_number": "{name}: not a number",
        "interaction_taken": "This interaction id was already used for another customer: the "
        "desktop must open the desk with a new one.",
        "decision_settled": "This contact's outcome is already recorded, and its details have "
        "changed since: the desktop must open the desk with a new interaction id.",
        "decision_busy": "This contact was being decided again at the same moment: reload "
        "the page.",
        # How desk.js lists several fields in one message.
        "list_separator": ", ",
        # The confirmation a desk link from another site asks for (desk_confirm.html).
        "confirm_title": "Open this contact?",
        "confirm_lead": "A link from another site asks to open this contact in the desk. "
        "Nothing is stored until you open it: opening it decides the contact under your "
        "key, as if your desktop had opened it.",
        "confirm_from": "The link came from",
        "confirm_check": "Open it only if it is the contact you are handling now.",
        "confirm_details": "The contact as the link gives it",
        "confirm_open": "Open this contact",
        # A suggestion on a contact that needs care (desk.cautions): shown, never hidden.
        "caution": "Resolve first ({reasons}): offer this only if the conversation allows "
        "it, otherwise record Skipped.",
        "caution_low": "low openness",
        "caution_complaint": "a complaint",
        "caution_upset": "the customer sounds upset",
        # Each VES item's button that takes its answer back (not asked, or a slip).
        "clear_answer": "Clear",
        "clear_answer_of": "Clear: {item}",
    },
    "ja": {
        "db_down_title": "データベースに接続できません",
        "db_down": "この判定は今は開けません。1分ほどしてから開き直してください。",
        "idle_title": "開いているお問い合わせはありません",
        "idle": "デスクトップでお問い合わせを開くと、ここにヒントが表示されます。",
        "not_found_title": "該当する判定がありません",
        "form_gone": "このお問い合わせの情報はもう残っていません（このページはすでに開かれたか、"
        "その後ブラウザーが閉じられました）。デスクトップからお問い合わせを開き直してください。",
        "not_found": "このリンクの判定は存在しません（古いリンクか入力の誤りです）。デスクトップ"
        "からお問い合わせを開き直してください。",
        "conflict_title": "このお問い合わせは表示できません",
        "unstored": "この判定はデータベースに接続できず保存されていないため、ここでは結果を記録"
        "できません。ヒントはいつもどおりお使いください。",
        "err_session": "セッションの有効期限が切れたため、記録されていません。もう一度サイン"
        "インしてください。入力内容はそのままこのページに戻りますので、「記録する」を押して"
        "ください。",
        "err_sign_in": "もう一度サインイン",
        "err_csrf": "ページが古くなっているため、記録されていません。ページを再読み込みして"
        "ください。入力内容は残ります。",
        "err_changed": "このページを開いた後で提案が変わったため、記録されていません。ページを"
        "再読み込みして記録し直してください。",
        "err_exists": "このお問い合わせには別の結果がすでに記録されています（別のタブや"
        "ウィンドウで記録済みかもしれません）。今回の入力は記録されていません。",
        "err_show_recorded": "記録内容を表示",
        "err_survey": "お客様のアンケートで「{field}」に別の回答がすでに記録されているため、"
        "記録されていません。その項目を空けて記録し直してください（アンケートの回答が残ります）。",
        "survey_record": "その項目を空けて記録",
        "err_invalid": "記録されていません。「{field}」を確認してください。",
        "err_refused": "記録されていません。この入力は受け付けられませんでした（エラー {status}）。"
        "内容を確認して記録し直してください。入力内容は残っています。",
        "err_busy": "リクエストが多すぎるため、記録されていません。{seconds}秒後にもう一度"
        "「記録する」を押してください。入力内容は残っています。",
        "err_down": "データベースに接続できないため、記録されていません。1分ほどしてから"
        "もう一度「記録する」を押してください。入力内容は残っています。",
        "err_offline": "サーバーに接続できないため、記録されていない可能性があります。もう一度"
        "「記録する」を押してください（二重に記録されることはありません）。入力内容は"
        "残っています。",
        "err_no_answer": "サーバーから応答がないため、記録されていない可能性があります。もう一度"
        "「記録する」を押してください（二重に記録されることはありません）。入力内容は"
        "残っています。",
        "err_other": "記録されていません（エラー {status}）。もう一度「記録する」を押して"
        "ください。入力内容は残っています。",
        "recording": "記録しています…",
        "already": "記録済み: {outcome}。",
        "recorded_at": "記録日時",
        "score_title": "価値向上の会話が成功する見込み（100点満点）",
        "digital_content": "デジタルコンテンツ",
        "not_whole": "{name}: 整数ではありません",
        "not_number": "{name}: 数値ではありません",
        "interaction_taken": "このお問い合わせID（interaction_id）は別のお客様にすでに使われて"
        "います。デスクトップから新しいIDで開き直す必要があります。",
        "decision_settled": "このお問い合わせの結果はすでに記録済みで、その後内容が変わっています。"
        "デスクトップから新しいお問い合わせID（interaction_id）で開き直す必要があります。",
        "decision_busy": "このお問い合わせは同時に判定し直されていました。ページを再読み込みして"
        "ください。",
        "list_separator": "、",
        "confirm_title": "このお問い合わせを開きますか？",
        "confirm_lead": "別のサイトのリンクが、このお問い合わせをデスクで開こうとしています。"
        "開くまでは何も保存されません。開くと、デスクトップから開いた場合と同じように、"
        "あなたのキーでこのお問い合わせが判定されます。",
        "confirm_from": "リンク元",
        "confirm_check": "いま対応しているお問い合わせの場合だけ開いてください。",
        "confirm_details": "リンクに書かれたお問い合わせの内容",
        "confirm_open": "このお問い合わせを開く",
        "caution": "まず解決を優先してください（{reasons}）。会話の流れが許すときだけ提案し、"
        "そうでなければ「見送り」を記録してください。",
        "caution_low": "受容度が低い",
        "caution_complaint": "苦情のお問い合わせ",
        "caution_upset": "お客様の感情が否定的",
        "clear_answer": "クリア",
        "clear_answer_of": "クリア: {item}",
    },
}


# When the earlier contact was, counted back from this contact (not from now: a desk
# reopened an hour later must not still say "2 min ago"). Units as models.elapsed picks
# them for the decision's own "continues a chat contact made ..." note.
BEFORE_CONTACT: dict[str, dict[str, str]] = {
    "en": {
        "now": "just before this contact",
        "minutes": "{n} min before this contact",
        "hours": "{n} h before this contact",
        "day": "1 day before this contact",
        "days": "{n} days before this contact",
    },
    "ja": {
        "now": "このお問い合わせの直前",
        "minutes": "このお問い合わせの{n}分前",
        "hours": "このお問い合わせの{n}時間前",
        "day": "このお問い合わせの1日前",
        "days": "このお問い合わせの{n}日前",
    },
}


class DeskInputError(Exception):
    """The desk link is incomplete or malformed: shown on the page, status 400."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def decision_body(args: Any, language: str) -> dict[str, Any]:
    """A ``POST /v1/decisions`` body from the query string, validated by the API's own
    schema (the desk accepts exactly what the API accepts). Problems are told in the
    page's language (``DeskInputError``)."""
    own = DESK_LABELS[language]
    missing = [name for name in REQUIRED if not args.get(name)]
    if missing:
        names = listed((content.field_label(name, language) for name in missing), language)
        raise DeskInputError([content.LABELS[language]["missing"].format(names=names)])
    customer: dict[str, Any] = {"customer_id": args["customer_id"]}
    contact: dict[str, Any] = {"language": language}
    problems: list[str] = []
    for names, target in ((CUSTOMER_FIELDS, customer), (CONTACT_FIELDS, contact)):
        for name in names:
            raw = args.get(name)
            if raw in (None, ""):
                continue
            label = content.field_label(name, language)
            if name in INTEGER_FIELDS:
                try:
                    target[name] = int(raw)
                except ValueError:
                    problems.append(own["not_whole"].format(name=label))
                continue
            if name in FLOAT_FIELDS:
                try:
                    target[name] = float(raw)  # nan and inf: the schema refuses them
                except ValueError:
                    problems.append(own["not_number"].format(name=label))
                continue
            if name == "occurred_at":
                raw = _offset_restored(raw)
            target[name] = raw
    if args.get("customer_language"):
        customer["language"] = args["customer_language"]
    raw_body = {"interaction_id": args["interaction_id"], "customer": customer, "contact": contact}
    try:
        body = DECISION_REQUEST.load(raw_body)
    except ma.ValidationError as exc:
        # Every problem at once: whoever fixes the desktop's link fixes them in one go.
        raise DeskInputError(problems + problem_lines(exc.messages, language)) from None
    if problems:
        raise DeskInputError(problems)
    return body


# A time's "+09:00" offset written into a link unencoded arrives as " 09:00" (in a query
# string or a posted form "+" means a space). A space there can mean nothing else, so
# the "+" is put back rather than the contact refused.
_SPACED_OFFSET = re.compile(r"(\d{4}-\d{2}-\d{2}T[\d:.]+) (\d{2}(?::?\d{2})?)")


def _offset_restored(value: str) -> str:
    spaced = _SPACED_OFFSET.fullmatch(value)
    return f"{spaced.group(1)}+{spaced.group(2)}" if spaced else value


def _check_agent_id(agent_id: str, language: str) -> None:
    """The page records outcomes with this agent id: refused now, as the outcome body
    would refuse it, rather than on every button press."""
    try:
        OUTCOME_REQUEST.load({**STATUSES["skipped"], "agent_id": agent_id})
    except ma.ValidationError as exc:
        raise DeskInputError(problem_lines(exc.messages, language)) from None


def _problems(messages: Any, path: tuple[str, ...] = ()) -> list[tuple[str | None, str]]:
    """``(parameter, message)`` for each of marshmallow's messages: the parameter as the
    desk's link names it (None: the message is about the whole request)."""
    if isinstance(messages, dict):
        out: list[tuple[str | None, str]] = []
        for key, value in messages.items():
            out += _problems(value, path if key == "_schema" else (*path, str(key)))
        return out
    if isinstance(messages, list):
        return [p for m in messages for p in _problems(m, path)]
    return [(_parameter(path), str(messages))]


def _parameter(path: tuple[str, ...]) -> str | None:
    # The link flattens the body: customer.tenure_months is tenure_months, and the
    # customer's language is customer_language (the contact's is the page's own).
    if path == ("customer", "language"):
        return "customer_language"
    if len(path) > 1 and path[0] in ("customer", "contact"):
        path = path[1:]
    return ".".join(path) or None


def problem_lines(messages: Any, language: str) -> list[str]:
    """marshmallow's messages as the desk shows them, one line each: in English as
    marshmallow wrote them, in Japanese the field's label and the problem in Japanese."""
    lines = []
    for name, message in _problems(messages):
        text = message if language == "en" else validation_text(message, language)
        lines.append(text if name is None else f"{content.field_label(name, language)}: {text}")
    return lines


def _unavailable() -> ApiError:
    return ApiError(
        503,
        "database unavailable: the decision cannot be read now; retry later",
        headers={"Retry-After": str(state().settings.retry_after_s)},
    )


def _read(query: sa.Select) -> Any:
    """The first row of a read, or ApiError 503 when the database is down (it was a 500:
    the desk and its outcome buttons must say what happened)."""
    try:
        with state().engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return conn.execute(query).first()
    except (DBAPIError, PoolTimeout) as exc:
        if isinstance(exc, DBAPIError) and not is_unavailable(exc):
            raise
        raise _unavailable() from None


def decided_language(interaction_id: str) -> str | None:
    """The language an interaction was decided in, or None if it is not decided yet."""
    row = _read(sa.select(decisions.c.language).where(decisions.c.interaction_id == interaction_id))
    return row[0] if row is not None else None


def stored_decision(decision_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(answer, features)`` of a stored decision, or None."""
    if has_control_characters(decision_id):
        return None  # never stored (PostgreSQL's text cannot even be compared with NUL)
    row = _read(
        sa.select(decisions.c.response, decisions.c.features, decisions.c.language).where(
            decisions.c.decision_id == decision_id
        )
    )
    if row is None:
        return None
    # The language the decision's reasons were phrased in travels with the features.
    return row.response, {**(row.features or {}), "_desk_language": row.language}


def recorded_outcome(decision_id: str) -> dict[str, Any] | None:
    """The outcome already recorded for a decision, or None: a reopened desk shows it
    instead of buttons whose different answer would be refused (409)."""
    row = _read(
        sa.select(
            outcomes.c.offered,
            outcomes.c.accepted,
            outcomes.c.ves_confidence,
            outcomes.c.ves_ability,
            outcomes.c.recorded_at,
        ).where(outcomes.c.decision_id == decision_id)
    )
    return None if row is None else dict(row._mapping)


def quiet(answer: dict[str, Any]) -> bool:
    """Nothing but "resolve effortlessly": the decision suggests no activity (no attempt,
    the control group, the contact policy's complaint rule, a capacity fallback).

    Only the decision may be quiet. The stored decision is the logged policy: its
    activity and propensity are what off-policy learning, retraining and the value
    report count as suggested, so a suggestion the desk hid would be counted as one the
    agent skipped and learnt from as if it had been tried. A contact that should get no
    suggestion (an upset complaint) is ruled out by the contact policy, which logs
    ``none`` and says why; the desk shows every suggestion the decision made, with a
    caution where it needs one (``cautions``)."""
    return not answer["openness"].get("attempt") or answer["suggested_activity"] == "none"


def cautions(answer: dict[str, Any], features: dict[str, Any], language: str) -> list[str]:
    """Why the agent should resolve first and offer only if the conversation allows it
    (the desk's own words): low openness, a complaint, a customer who sounds upset (at or
    below the complaint rule's sentiment threshold). Empty when none applies."""
    own = DESK_LABELS[language]
    threshold = state().settings.negative_sentiment_threshold
    sentiment = features.get("sentiment")
    return [
        own[key]
        for key, applies in (
            ("caution_low", answer["openness"].get("band") == "low"),
            ("caution_complaint", features.get("issue_type") == "complaint"),
            ("caution_upset", sentiment is not None and float(sentiment) <= threshold),
        )
        if applies
    ]


def _made_in(features: dict[str, Any]) -> str | None:
    """The language (``en``/``ja``) the decision's sentences were written in, or None
    when the decision predates storing it."""
    made_in = features.get("_desk_language")
    return language_of(made_in) if made_in else None


def _explanation(
    answer: dict[str, Any],
    features: dict[str, Any],
    language: str,
    pools: Mapping[str, Pool] | None = None,
) -> tuple[str | None, list[str]]:
    """The suggested activity's hint and reasons (its own, then the decision's). When the
    agent reads another language than the decision was made in, each stored sentence is
    written again in that language: the model that made the decision says it again
    (``_rephrasings``), else its template is read back (``in_language``)."""
    suggested = answer["suggested_activity"]
    made_in = _made_in(features)
    item = next((a for a in answer.get("activities") or [] if a["activity"] == suggested), None)
    phrases: dict[str, str] = {}
    if made_in not in (None, language):
        phrases = _rephrasings(answer, features, made_in, language)

    def said(text: str) -> str:
        return phrases.get(text) or in_language(text, language, made_in, pools)

    notes = [said(n) for n in answer.get("reasons") or []]
    if item is None:
        return None, notes
    reasons = [*map(said, item.get("reasons", [])), *notes]
    return _hint(item, made_in, language, phrases), reasons


def _hint(
    item: dict[str, Any], made_in: str | None, language: str, phrases: dict[str, str]
) -> str | None:
    """The activity's one-liner in ``language``: every model says the shared hints file's
    (models/content/hints.yaml), so one the deciding model cannot say again is looked up."""
    hint = item.get("hint")
    if not hint or made_in in (None, language) or hint in phrases:
        return phrases.get(hint, hint) if hint else hint
    # The activity's hint in the page's language, also when the file was edited since the
    # decision (the stored hint is then no longer the file's): never the other language's.
    return fallback.hints().get(language, {}).get(item["activity"], hint)


def _rephrasings(
    answer: dict[str, Any], features: dict[str, Any], made_in: str, language: str
) -> dict[str, str]:
    """``{sentence as stored: the same sentence in language}`` for the suggested activity's
    hint and reasons and the model's notes, said again by the model version that made the
    decision on the features it saw (display only, nothing is stored). Not the serving
    champion: after a promote it would give other reasons, not these in the other
    language. A sentence pairs only when that model says it again word for word in the
    decision's language. When that model cannot be loaded any more, only the sentences
    naming a feature are paired."""
    policy = answer.get("contact_policy") or {}
    seen = {k: v for k, v in features.items() if not k.startswith("_")}
    kwargs = {
        "blocked_activities": frozenset(policy.get("blocked_activities") or []),
        "allow_attempt": bool(policy.get("allow_attempt", True)),
    }
    version = answer.get("model_version")
    before = _decide_as(version, seen, language=made_in, **kwargs)
    after = _decide_as(version, seen, language=language, **kwargs) if before else None
    pairs: dict[str, str] = {}
    if before is None or after is None:
        # Most of a model's reasons name a feature and its value (models.reasons.describe):
        # those are said again from the features, the rest read back or marked.
        for name, value in seen.items():
            pairs.setdefault(describe(name, value, made_in), describe(name, value, language))
        return pairs

    def pair(source: list[str], target: list[str]) -> None:
        if len(source) == len(target):  # the same sentences, in order
            pairs.update((s, t) for s, t in zip(source, target, strict=True) if s not in pairs)

    pair(before.get("reasons") or [], after.get("reasons") or [])
    suggested = answer["suggested_activity"]
    for a, b in zip(before.get("activities") or [], after.get("activities") or [], strict=False):
        if a["activity"] == b["activity"] == suggested:
            pair(
                [a.get("hint") or "", *a.get("reasons", [])],
                [b.get("hint") or "", *b.get("reasons", [])],
            )
    return pairs


# Models that decided earlier than the serving champion, by version: a desk reopened in
# the other language after a promote is rephrased by the model that decided. Few are
# kept (each holds its forests); loading one verifies its checksums, once per worker.
# Keyed by registry and version; None: that version cannot be loaded.
_EARLIER_MODELS: OrderedDict[tuple[str, str], Decider | None] = OrderedDict()
_EARLIER_MODELS_KEPT = 2
_earlier_lock = threading.Lock()  # a Decider reuses its buffers: one call at a time


def _decide_as(version: str | None, features: dict[str, Any], **kwargs: Any) -> dict | None:
    """``version``'s decision on ``features``, or None when that model is not available
    (removed from the registry, or failing to load)."""
    if not version:
        return None
    if version == FALLBACK_VERSION:  # degraded: the rules decided
        return decide_fallback(features, **kwargs)
    models = state().models
    if version == models.version:
        served = models.decide(features, **kwargs)
        # Swapped meanwhile, or the model failed and the rules answered: not its words.
        return served.result if served.model_version == version else None
    with _earlier_lock:
        key = (str(models.registry.root), version)
        if key in _EARLIER_MODELS:
            decider = _EARLIER_MODELS[key]
            _EARLIER_MODELS.move_to_end(key)
        else:
            try:
                decider = build_decider(models.registry, version, models.compile_cache)
            except Exception as exc:  # noqa: BLE001 - any failure: stored words read back
                # Remembered too: a bundle is never rewritten, so it is not retried per page.
                log.warning(
                    "earlier model unavailable", extra={"version": version, "error": str(exc)}
                )
                decider = None
            _EARLIER_MODELS[key] = decider
            while len(_EARLIER_MODELS) > _EARLIER_MODELS_KEPT:
                _EARLIER_MODELS.popitem(last=False)
        if decider is None:
            return None
        try:
            return decider.decide(features, **kwargs)
        except Exception as exc:  # noqa: BLE001 - display only: stored words read back
            log.warning(
                "earlier model failed", extra={"version": version, "error": error_summary(exc)}
            )
            return None


# Server-made sentences the desk may have to show in the other language than they were
# made in: routing reasons (models.matching), the decision's notes (service.decisions),
# the contact policy's (models.contact_policy) and the rule fallback's (models.fallback).
# Each is one template per language with the same fields, so a sentence made in one
# language is read back into its fields and written again in the other.
_TEMPLATE_TABLES = (
    matching._TEXT,
    use_cases._TEXT,
    contact_policy._MESSAGES,
    fallback._REASONS,
    elapsed.AGO,  # the phrases of the {ago} field ("12 min ago")
)
_FIELD = re.compile(r"\{(\w+)(:[^}]*)?\}")
_NUMBER = r"[+-]?\d+(?:\.\d+)?"
# Fields that name an activity (by its id or its name in either language).
_ACTIVITY_FIELDS = frozenset({"activity", "original", "best"})
_ACTIVITY_IDS = {
    name: activity for names in ACTIVITY_NAMES.values() for activity, name in names.items()
} | {activity: activity for activity in ACTIVITY_NAMES["en"]}
# Fields that hold a channel or an issue type.
_CATEGORY_FIELDS = frozenset({"channel", "issue"})
# Fields that are themselves a phrase of a template table ("expected wait 12 s").
_PHRASE_FIELDS = frozenset({"wait", "ago"})
# Fields that name a pool, or several (models.matching.LIST_SEPARATOR), by display name.
_POOL_FIELDS = frozenset({"pool"})
_POOL_LIST_FIELDS = frozenset({"pools"})
# A sentence no template reads is shown as written, marked as the original (as the
# dashboard marks an untranslated gate reason).
_ORIGINAL = {"en": "(original) ", "ja": "（原文）"}


def _fields(template: str) -> set[str]:
    return {m.group(1) for m in _FIELD.finditer(template)}


def _compile(template: str) -> re.Pattern[str]:
    parts, end, seen = [], 0, set()
    for field in _FIELD.finditer(template):
        parts.append(re.escape(template[end : field.start()]))
        if field.group(1) in seen:  # a field said twice holds the same text twice
            parts.append(f"(?P={field.group(1)})")
            end = field.end()
            continue
        seen.add(field.group(1))
        # No field holds the "; " that joins two reasons (models.matching), so a sentence
        # cannot swallow the one after it.
        value = _NUMBER if field.group(2) else r"(?:(?!; ).)+?"
        parts.append(f"(?P<{field.group(1)}>{value})")
        end = field.end()
    parts.append(re.escape(template[end:]))
    return re.compile("".join(parts))


def _build_templates() -> dict[tuple[str, str], list[tuple[re.Pattern[str], str]]]:
    """``(from, to) -> [(pattern of a sentence in from, the same sentence in to)]``; also
    within a language, to name an activity by name where a sentence names it by id."""
    out: dict[tuple[str, str], list[tuple[re.Pattern[str], str]]] = {}
    for table in _TEMPLATE_TABLES:
        for source, target in (("en", "ja"), ("ja", "en"), ("ja", "ja"), ("en", "en")):
            for key, template in table[source].items():
                # Only a sentence whose other language says the same fields is rewritten.
                other = table[target].get(key)
                if other is not None and _fields(other) == _fields(template):
                    plain = _FIELD.sub(lambda m: "{" + m.group(1) + "}", other)
                    out.setdefault((source, target), []).append((_compile(template), plain))
    return out


_TEMPLATES = _build_templates()


def pool_lookup(config: PoolConfig | None) -> dict[str, Pool]:
    """Each pool by its id and by every display name it has: a reason names a pool in the
    language it was made in, and the desk names it again in its own."""
    found: dict[str, Pool] = {}
    for pool in config.pools if config is not None else ():
        for name in (pool.id, *pool.name.values()):
            found.setdefault(name, pool)
    return found


def _pool_said(value: str, source: str, target: str, pools: Mapping[str, Pool]) -> str:
    """A pool field (one name, or a list of them) in ``target``'s names. A name the config
    no longer has (renamed, removed) leaves the field as written."""
    found = _named_pools(value, matching.LIST_SEPARATOR[source], pools)
    if found is None:
        return value
    return matching.LIST_SEPARATOR[target].join(pool.display_name(target) for pool in found)


def _named_pools(value: str, separator: str, pools: Mapping[str, Pool]) -> list[Pool] | None:
    """The pools a list of names reads as, or None. Matched name by name rather than split
    on the separator: a display name may hold it ("Usage, second line")."""
    if value in pools:
        return [pools[value]]
    for name, pool in pools.items():
        if value.startswith(name + separator):
            rest = _named_pools(value[len(name) + len(separator) :], separator, pools)
            if rest is not None:
                return [pool, *rest]
    return None


def _translate_one(
    text: str, source: str, target: str, pools: Mapping[str, Pool] | None = None
) -> str | None:
    for pattern, template in _TEMPLATES.get((source, target), ()):
        match = pattern.fullmatch(text)
        if match is None:
            continue
        values: dict[str, str] = {}
        for name, value in match.groupdict().items():
            if name in _ACTIVITY_FIELDS:  # named as routing reasons name it
                activity = _ACTIVITY_IDS.get(value)
                value = value if activity is None else matching._said(activity, target)
            elif name in _CATEGORY_FIELDS:  # チャット in Japanese, chat in English
                value = category_name(CATEGORY_IDS.get(value, value), target)
            elif name in _PHRASE_FIELDS:
                value = _translate_one(value, source, target) or value
            elif pools and (name in _POOL_FIELDS or name in _POOL_LIST_FIELDS):
                value = _pool_said(value, source, target, pools)
            values[name] = value
        return template.format(**values)
    return None


def _translate(
    text: str, source: str, target: str, pools: Mapping[str, Pool] | None = None
) -> str | None:
    """``text`` written again in ``target``, or None when no template reads it. Routing
    joins several reasons with "; " (a pool draw, the choice, pools over the wait
    limit), so a sentence no single template reads is tried as such a join."""
    whole = _translate_one(text, source, target, pools)
    if whole is not None:
        return whole
    cut = text.find("; ")
    while cut >= 0:
        head = _translate_one(text[:cut], source, target, pools)
        if head is not None:
            tail = _translate(text[cut + 2 :], source, target, pools)
            if tail is not None:
                return f"{head}; {tail}"
        cut = text.find("; ", cut + 1)
    return None


def in_language(
    text: str,
    language: str,
    made_in: str | None = None,
    pools: Mapping[str, Pool] | None = None,
) -> str:
    """A server-made sentence in the page's language: as it is when it was made in that
    language, written again from its template when it was made in the other, else as
    written and marked as the original (never left out: the agent must see why).
    ``pools`` (``pool_lookup``): pools named by id or in the other language are named
    by their display name in the page's language; without it pools stay as written."""
    if made_in is None:  # not stored with the decision: Japanese has non-ASCII text
        made_in = "ja" if any(ord(ch) > 0x2E80 for ch in text) else "en"
    if made_in == language:  # some sentences name an activity or a pool by its id
        return _translate(text, language, language, pools) or text
    return _translate(text, made_in, language, pools) or _ORIGINAL[language] + text


# marshmallow's standard messages and the service's own, read back into what they say
# (content.VALIDATION_TEXTS). Built from marshmallow's own templates, so a reworded
# message is shown as written (behind a lead-in) rather than misread.
def _validation_patterns() -> list[tuple[re.Pattern[str], str, dict[str, str]]]:
    f, v, r = ma.fields, ma.validate, ma.validate.Range
    errors = f.Field.default_error_messages
    date = f.DateTime.default_error_messages
    entries: list[tuple[str, str, dict[str, str]]] = [
        (errors["required"], "required", {}),
        (errors["null"], "null", {}),
        (errors["validator_failed"], "invalid", {}),
        (f.String.default_error_messages["invalid"], "not_string", {}),
        (f.Integer.default_error_messages["invalid"], "not_integer", {}),
        (f.Number.default_error_messages["invalid"], "not_number", {}),
        (f.Number.default_error_messages["too_large"], "too_large", {}),
        (f.Float.default_error_messages["special"], "special", {}),
        (f.Boolean.default_error_messages["invalid"], "not_boolean", {}),
        (date["invalid"].format(obj_type="datetime"), "not_datetime", {}),
        (
            date["invalid_awareness"].format(awareness="aware", obj_type="datetime"),
            "not_aware",
            {},
        ),
        (f.Nested.default_error_messages["type"], "bad_type", {}),
        (ma.Schema._default_error_messages["type"], "bad_type", {}),
        (ma.Schema._default_error_messages["unknown"], "unknown_field", {}),
        (v.OneOf.default_message, "one_of", {}),
        (v.Length.message_min, "length_min", {}),
        (v.Length.message_max, "length_max", {}),
        (v.Length.message_all, "length_between", {}),
        (v.Length.message_equal, "length_equal", {}),
        (LANGUAGE_TAG_HINT, "language_tag", {}),
        (DATE_RANGE_MESSAGE, "date_range", {}),
        ("must not be in the future", "future", {}),
        ("strings must not contain control characters (NUL, carriage return, ...)", "control", {}),
    ]
    # Tried in this order: a field matches any text, so "Must be greater than {min}." would
    # also read "Must be greater than or equal to 0." and a bound alone a range's two.
    lower = {"gte": r.message_gte, "gt": r.message_gt}
    upper = {"lte": r.message_lte, "lt": r.message_lt}
    for low, low_words in lower.items():
        for high, high_words in upper.items():
            entries.append(
                (
                    r.message_all.format(min_op=low_words, max_op=high_words),
                    "range_between",
                    {"min_op": f"{low}_and", "max_op": high},
                )
            )
    for low, low_words in lower.items():
        entries.append((r.message_min.format(min_op=low_words), "range_min", {"min_op": low}))
    for high, high_words in upper.items():
        entries.append((r.message_max.format(max_op=high_words), "range_max", {"max_op": high}))
    return [(_compile(template), kind, ops) for template, kind, ops in entries]


_VALIDATION = _validation_patterns()


def validation_text(message: str, language: str) -> str:
    """One validation message in ``language``: what it says, or the message as written
    behind a lead-in that says to check the value."""
    texts = content.VALIDATION_TEXTS.get(language)
    if texts is None:
        return message
    ops = content.RANGE_OPS[language]
    for pattern, kind, words in _VALIDATION:
        match = pattern.fullmatch(message)
        if match is not None:
            values = {name: ops[op] for name, op in words.items()}
            return texts[kind].format(**match.groupdict(), **values)
    return texts["other"].format(message=message)


def _continuation_note(text: str) -> bool:
    """Whether a decision note is the "continues the earlier contact" line, which the
    desk shows as its own card instead (``service.decisions`` phrases it)."""
    for texts in use_cases._TEXT.values():
        pattern = re.escape(texts["continues"])
        pattern = re.sub(r"\\\{\w+\\\}", ".*", pattern)
        if re.fullmatch(pattern, text):
            return True
    return False


def _seconds_between(earlier: str, later: str) -> float | None:
    try:
        a = datetime.fromisoformat(earlier.rstrip("Z"))
        b = datetime.fromisoformat(later.rstrip("Z"))
    except (TypeError, ValueError):
        return None
    return (b - a).total_seconds()


def _pool_name(
    pool_id: str,
    route: dict[str, Any],
    pools: Mapping[str, Pool],
    language: str,
    made_in: str | None,
) -> str:
    """A pool as the agent reads it: its display name in the page's language (the pools
    config of the moment), else the name the decision answered if it was made in this
    language (a pool since removed), else the id."""
    if pool_id == DIGITAL_CONTENT:
        return DESK_LABELS[language]["digital_content"]
    pool = pools.get(pool_id)
    if pool is not None and pool.id == pool_id:
        return pool.display_name(language)
    if route.get("pool") == pool_id and made_in == language and route.get("pool_name"):
        return route["pool_name"]
    return pool_id


def view_model(
    answer: dict[str, Any],
    features: dict[str, Any],
    language: str,
    recorded: dict[str, Any] | None = None,
    config: PoolConfig | None = None,
    earlier_recorded: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the template shows, already in the agent's language. ``config``: the
    pools config, to name pools (without it they are named by id). ``earlier_recorded``:
    the outcome recorded by now for the contact this one continues (the answer holds the
    outcome known when it was decided: often none yet)."""
    labels = content.LABELS[language]
    names = content.ACTIVITY_NAMES[language]
    suggested = answer["suggested_activity"]
    issue = features.get("issue_type")
    model = {
        "decision_id": answer["decision_id"],
        "quiet": quiet(answer),
        "caution": None,
        "resolve": content.resolve_text(language),
        "score": round(float(answer["openness"]["score"]) * 100),
        "band": answer["openness"]["band"],
        "band_label": labels[f"band_{answer['openness']['band']}"],
        "activity": suggested,
        "activity_name": names.get(suggested, suggested),
        "talk_track": content.talk_track(suggested, issue, language),
        "hint": None,
        "reasons": [],
        "route": answer.get("route") or {},
        "pool_name": None,
        "fallback_names": [],
        "route_reason": None,
        "holdout": answer.get("experiment_arm") == "holdout",
        "degraded": bool(answer.get("degraded")),
        # An unstored decision (database down) has no id an outcome could be posted to.
        "stored": answer.get("stored", True) is not False,
        "earlier": None,
        "recorded": None,
    }
    if recorded is not None:
        model["recorded"] = {
            "text": DESK_LABELS[language]["already"].format(
                outcome=_outcome_text(recorded, labels, language)
            ),
            "at": iso_utc(recorded["recorded_at"]),
            # The disabled form shows what was recorded, button and VES answers.
            "status": _status_of(recorded),
            "ves_confidence": recorded.get("ves_confidence"),
            "ves_ability": recorded.get("ves_ability"),
        }
    if model["quiet"]:
        return model  # nothing else is computed or shown
    found = cautions(answer, features, language)
    if found:
        own = DESK_LABELS[language]
        model["caution"] = own["caution"].format(reasons=listed(found, language))
    pools = pool_lookup(config)
    made_in = _made_in(features)
    model["hint"], model["reasons"] = _explanation(answer, features, language, pools)
    if answer.get("continuation"):
        model["reasons"] = [r for r in model["reasons"] if not _continuation_note(r)]
    route = model["route"]
    if route.get("pool"):
        # By name in the desk's language, as the dashboard names pools (the id beside it).
        model["pool_name"] = _pool_name(route["pool"], route, pools, language, made_in)
        model["fallback_names"] = [
            _pool_name(pool, route, pools, language, made_in)
            for pool in route.get("fallbacks") or []
        ]
    reason = route.get("reason")
    model["route_reason"] = in_language(reason, language, made_in, pools) if reason else None
    earlier = answer.get("continuation")
    if earlier:
        # Before this contact, not before now (BEFORE_CONTACT). A decision stored before
        # its answer carried the contact's time falls back to the time of the request,
        # which overstates the gap when the desk was opened late.
        this_contact = answer.get("context", {}).get("occurred_at") or answer.get("created_at")
        gap = _seconds_between(earlier.get("occurred_at", ""), this_contact or "")
        when = "?" if gap is None else elapsed.say(gap, BEFORE_CONTACT[language])
        outcome = earlier_recorded or earlier.get("outcome")
        outcome_text = _outcome_text(outcome, labels, language) if outcome else labels["no_outcome"]
        model["earlier"] = {
            "line": labels["earlier_line"].format(
                channel=category_name(earlier.get("channel"), language),
                when=when,
                issue=category_name(earlier.get("issue_type"), language),
                activity=names.get(earlier.get("activity"), earlier.get("activity")),
            ),
            "outcome": labels["earlier_outcome"].format(outcome=outcome_text),
        }
    return model


def _status_of(outcome: dict[str, Any]) -> str:
    """The outcome button (``STATUSES``) an outcome's two booleans stand for."""
    if not outcome.get("offered"):
        return "skipped"
    accepted = outcome.get("accepted")
    return "offered" if accepted is None else ("accepted" if accepted else "declined")


def _outcome_text(outcome: dict[str, Any], labels: dict[str, str], language: str) -> str:
    """An outcome as the buttons name it, with its VES answers."""
    parts = [
        labels[name]
        for name, flag in (
            ("offered", outcome.get("offered") and outcome.get("accepted") is None),
            ("accepted", outcome.get("accepted") is True),
            ("declined", outcome.get("accepted") is False),
            ("skipped", outcome.get("offered") is False),
        )
        if flag
    ]
    ves = [outcome.get(k) for k in ("ves_confidence", "ves_ability")]
    if any(v is not None for v in ves):
        parts.append("VES " + " / ".join("–" if v is None else str(v) for v in ves))
    return listed(parts, language) or labels["no_outcome"]


def blueprint() -> Blueprint:
    blp = Blueprint("desk", __name__)

    # POST takes the same fields as a form, for desktops that post the interaction. It
    # needs no CSRF token: it does exactly what the GET does (an idempotent decision per
    # interaction_id, no outcome), and the SameSite=Lax cookie is not sent on a
    # cross-site POST, so only a same-site desktop can use it. Either, from another site
    # whose origin is not the desk's, decides only once the agent confirms it: the
    # confirmation page posts the same form with the session's CSRF token
    # (_confirmation_needed).
    @blp.route("/desk", methods=["GET", "POST"])
    @page_access("decisions", "outcomes", form_as_query=True)
    def desk():
        language = content.pick_language(
            request.args.get("lang"), request.cookies.get("vea_lang"), request.accept_languages
        )
        labels = content.LABELS[language]
        args: Mapping[str, str] = request.args
        posted = request.method == "POST"
        if posted:
            args = request.form
        elif request.args.get(POSTED_FORM_PARAMETER):
            # Back from the sign-in that a form posted while signed out led to.
            kept = take_posted_form(request.args[POSTED_FORM_PARAMETER])
            if kept is None:
                page = {"language": language, "labels": labels, "agent_id": None}
                return _problem(page, [DESK_LABELS[language]["form_gone"]], 404)
            args, posted = MultiDict(kept), True
        page = {"language": language, "labels": labels, "agent_id": args.get("agent_id")}
        if not posted and not any(name in args for name in (*REQUIRED, "decision_id")):
            # Signed in before any contact (a plain sign-in lands here): nothing is wrong.
            own = DESK_LABELS[language]
            return render_template("desk_idle.html", **page, desk_labels=own)
        try:
            if args.get("agent_id"):
                _check_agent_id(args["agent_id"], language)
            if args.get("decision_id"):
                found = stored_decision(args["decision_id"])
                if found is None:
                    return _problem(page, [DESK_LABELS[language]["not_found"]], 404)
                answer, features = found
            else:
                body = decision_body(args, language)
                if _confirmation_needed(body["interaction_id"]):
                    # Another site's link: nothing is decided until the agent says so.
                    return _confirmation(page, args)
                try:
                    first_language = decided_language(body["interaction_id"])
                except ApiError:  # database down: decided below, degraded and unstored
                    first_language = None
                if first_language is not None:
                    # Switching the page's language re-opens the decision; only changed
                    # contact details decide the interaction again.
                    body["contact"]["language"] = first_language
                answer, how = use_cases.decide(state(), body, session.get("key_id"))
                # A replay keeps the language the decision was first made in.
                stored = (
                    None if how == use_cases.UNSTORED else stored_decision(answer["decision_id"])
                )
                if stored is not None:
                    features = stored[1]
                else:  # answered but not stored (database down)
                    features, made_in = use_cases.model_features(body)
                    features["_desk_language"] = made_in
        except DeskInputError as exc:
            return _problem(page, exc.messages, 400)
        except ApiError as exc:
            return _problem(page, [_api_message(exc, language)], min(exc.status, 503))
        if posted and answer.get("stored", True):
            # Post/redirect/get: reloading or switching language re-opens the decision.
            # An unstored one (database down) is shown at once: it cannot be re-opened.
            # A language the desktop's link names stays named (the form has no say in it).
            target = {
                "decision_id": answer["decision_id"],
                "agent_id": args.get("agent_id"),
                "lang": request.args.get("lang"),
            }
            return redirect(url_for("desk.desk", **{k: v for k, v in target.items() if v}))
        try:
            recorded = (
                recorded_outcome(answer["decision_id"]) if answer.get("stored", True) else None
            )
        except ApiError:  # database down: the page still shows its hint
            recorded = None
        earlier_id = (answer.get("continuation") or {}).get("decision_id")
        try:
            earlier_recorded = recorded_outcome(earlier_id) if earlier_id else None
        except ApiError:  # the card then shows the outcome known at the decision
            earlier_recorded = None
        d = view_model(answer, features, language, recorded, state().pools.config, earlier_recorded)
        return render_template("desk.html", **page, d=d, desk_labels=DESK_LABELS[language])

    @blp.route("/desk/outcome", methods=["POST"])
    @page_access("outcomes", api=True)
    def desk_outcome():
        # Errors in the API's format (service.errors), with the field messages joined
        # into ``message`` for the page to show as they are.
        if not csrf_ok():
            raise ApiError(403, "missing or wrong CSRF token: reload the page")
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ApiError(400, "malformed request: the body must be a JSON object")
        problems: dict[str, list[str]] = {}
        status = data.get("status")
        decision_id = data.get("decision_id")
        if not isinstance(status, str) or status not in STATUSES:
            problems["status"] = ["must be offered, accepted, declined or skipped"]
        if not isinstance(decision_id, str) or not decision_id:
            problems["decision_id"] = ["the decision the outcome is for is required"]
        if problems:
            raise _invalid(problems)
        raw = {**STATUSES[status]}
        for name in ("ves_confidence", "ves_ability", "agent_id"):
            if data.get(name) not in (None, ""):
                raw[name] = data[name]
        found = stored_decision(decision_id)
        if found is None:
            raise ApiError(404, "no such decision")
        shown = data.get("shown_activity")
        if shown is not None and shown != found[0]["suggested_activity"]:
            # The desktop called again with changed details after this page opened: the
            # agent's buttons were about a suggestion that no longer stands.
            raise ApiError(
                409,
                "the decision changed since this page was opened: reload it and record again",
                code="decision_changed",
            )
        if found[0]["suggested_activity"] == "none":
            raw["activity"] = "none"
            raw["offered"] = False
            raw["accepted"] = None
        try:
            body = OUTCOME_REQUEST.load(raw)
        except ma.ValidationError as exc:
            raise _invalid(exc.messages) from None
        answer, created = use_cases.record_outcome(state(), decision_id, body)
        return jsonify(answer), 201 if created else 200

    return blp


def _confirmation_needed(interaction_id: str) -> bool:
    """Whether this request, which would decide (and store) the contact, waits for the
    agent's confirmation: another site's page opened it (``Sec-Fetch-Site`` cross-site
    or same-site) from an origin that is not the desk's (``Settings.desk_link_sources``),
    or it comes back from such a link (the sign-in it led to, the language switch). The
    SameSite=Lax cookie comes with any site's top-level link, so without this any page
    an agent visits could store decisions under the agent's key. The confirmation
    page's post carries the session's CSRF token: another site cannot make it."""
    if request.method == "POST" and CSRF_FIELD in request.form:
        if not csrf_ok():  # a stale confirmation page (another session): asked again
            return True
        confirmed(interaction_id)
        return False
    if from_other_site():
        if from_untrusted_site():
            return True
        confirmed(interaction_id)  # the desktop itself opened it
        return False
    return is_unconfirmed(interaction_id)


def _confirmation(page: dict[str, Any], args: Mapping[str, str]):
    """The page that asks the agent to open a contact another site's link named: its
    details as the link gives them, and a button that posts them back with the CSRF
    token (the desk's form post). Nothing is stored by showing it."""
    language = page["language"]
    mark_unconfirmed(args["interaction_id"])  # also after a language switch or sign-in
    fields = [(name, args[name]) for name in LINK_FIELDS if args.get(name)]
    page = render_template(
        "desk_confirm.html",
        **page,
        desk_labels=DESK_LABELS[language],
        fields=fields,
        details=[(content.field_label(name, language), value) for name, value in fields],
        # The link's language stays the page's after the post, as for a desktop's form.
        action=url_for("desk.desk", lang=request.args.get("lang") or None),
        origin=request_origin() if from_other_site() else None,
    )
    return page, 200


def _api_message(exc: ApiError, language: str) -> str:
    """A decision's refusal in the page's language where the desk knows it (the API's
    messages are English)."""
    own = DESK_LABELS[language]
    if exc.code == "decision_has_outcome":
        return own["decision_settled"]
    if exc.code == "decision_changed":
        return own["decision_busy"]
    if exc.status == 409 and "interaction_id" in (exc.fields or {}):
        return own["interaction_taken"]
    return exc.message


def _problem(page: dict[str, Any], messages: list[str], status: int):
    """The desk's error page, titled by what went wrong (a 503 or a 404 is not a
    malformed link), in the page's language."""
    language = page["language"]
    own = DESK_LABELS[language]
    headers: dict[str, str] = {}
    title, help_text = page["labels"]["bad_request"], page["labels"]["bad_request_help"]
    if status == 503:
        title, messages, help_text = own["db_down_title"], [own["db_down"]], None
        headers["Retry-After"] = str(state().settings.retry_after_s)
    elif status == 404:
        title, help_text = own["not_found_title"], None
    elif status == 409:
        title = own["conflict_title"]
    page = render_template(
        "desk_problem.html", **page, title=title, help_text=help_text, messages=messages
    )
    return page, status, headers


def _invalid(messages: Any) -> ApiError:
    fields = messages if isinstance(messages, dict) else {"_schema": messages}
    return ApiError(422, "; ".join(problem_lines(fields, "en")), fields=fields)
