"""Agent pools: what each pool serves, who is in it, and the self-service content catalogue.

A pools file (YAML; the service reads ``VEA_POOLS`` and then keeps the config in its
database, ``GET|PUT /v1/pools``) looks like::

    pools:
      - id: value_onboarding
        name: {en: Onboarding value, ja: 購入直後の価値向上}   # optional; else the id is shown
        activities: [validate_purchase, achieve_goals]
        languages: [ja, en]          # omitted: every language
        channels: [voice, chat]      # omitted: every channel except self_service
        segments: [enterprise]       # omitted: every segment
        membership: proficiency      # members come from `vea pools rebuild`
        members: [agent-001, ...]    # static pools list their agents
        capacity: 12                 # agents who can take contacts at once
        lift: {validate_purchase: 1.18}   # written by the rebuild: members' proficiency
      - id: general                  # always present: the last fallback; it takes every
        activities: []               # activity and every agent answers it, so it lists
                                     # neither (answers: all_activities: true,
                                     # membership: all_agents)

Plain data in and out: parsing validates everything and raises ``PoolError`` with the
pool and field named, so an operator sees exactly what to fix.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from models.activities import CHANNELS, NONE, VALUE_ACTIVITIES
from models.schema import (
    canonical_language,
    language_tag_problem,
    normal_category,
    primary_language,
)

GENERAL = "general"
SELF_SERVICE = "self_service"
# The route of a self-service contact: digital content instead of an agent pool.
DIGITAL_CONTENT = "digital_content"
# `general` alone: every agent answers it (it lists no members). Configs stored before
# this membership existed gave general `static` with no members, which reads the same.
ALL_AGENTS = "all_agents"
MEMBERSHIPS = ("static", "proficiency", ALL_AGENTS)
POOL_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}\Z")  # \Z: "$" lets a final newline in
# A pool's display name per language (`name: {en: ..., ja: ...}`), keyed as the talk
# tracks are: a primary language code, so a page in `ja` finds it without tag matching.
NAME_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
MAX_NAME = 80
FALLBACK_NAME_LANGUAGE = "en"
POOL_KEYS = {
    "id",
    "name",
    "description",
    "all_activities",
    "activities",
    "languages",
    "channels",
    "segments",
    "membership",
    "members",
    "capacity",
    "lift",
}
MAX_LIFT = 5.0
# A lift is stored with this many decimals (Pool.to_dict), so the smallest one a stored
# config can hold is MIN_LIFT: a smaller one would be stored as 0, which no reader accepts.
LIFT_DECIMALS = 4
MIN_LIFT = 10.0**-LIFT_DECIMALS


class PoolError(ValueError):
    """A pools config or content catalogue that cannot be used; the message says why."""


# --------------------------------------------------------------------------- ids
# The rule of an id the API takes (an outcome's agent_id, a customer or interaction id:
# service.schemas), here so that a pool member and an offline log's agent are held to it
# too: a member the outcome endpoint would refuse as an agent_id could never be measured.
MAX_ID = 128
ID_RULES = "1-128 characters in Unicode NFC, no invisible characters, no padding spaces"
# Control characters other than tab and line feed (refused in every string of a request).
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
# Unicode categories of characters that show as nothing: format (zero-width, bidi
# controls, BOM), control (C1) and line separators.
INVISIBLE = frozenset({"Cf", "Cc", "Zl", "Zp"})


def id_problem(value: str) -> str | None:
    """Why ``value`` is no id the API takes (None: it is one). Ids are compared as stored
    (history, idempotency, pools by agent): the same text in another Unicode form, with an
    invisible character or a padding space, would silently be another agent."""
    if not 1 <= len(value) <= MAX_ID:
        return f"must be 1-{MAX_ID} characters"
    if CONTROL.search(value):
        return "must not contain control characters (NUL, carriage return, ...)"
    if value != value.strip():
        return "must not begin or end with whitespace"
    if value.isascii():
        return None
    if any(unicodedata.category(char) in INVISIBLE for char in value):
        return (
            "must not contain invisible characters (zero-width, bidirectional controls, "
            "byte order mark, C1 controls, line separators)"
        )
    if not unicodedata.is_normalized("NFC", value):
        return (
            "must be in Unicode normalization form NFC (an accented letter as one "
            "character, not a letter and a combining accent)"
        )
    return None


def customer_id_problem(value: str) -> str | None:
    """Why ``value`` is no customer id (None: it is one): an id's rules, and no empty part
    between slashes, which the customer routes (``/v1/customers/<id>/...``: access,
    events, erasure) could not reach."""
    problem = id_problem(value)
    if problem is None and "" in value.split("/"):
        return "must not begin or end with '/' nor hold '//' (the customer routes take it)"
    return problem


@dataclass(frozen=True)
class Pool:
    id: str
    activities: frozenset[str] = frozenset()
    languages: frozenset[str] | None = None  # canonical tags; None: every language
    channels: frozenset[str] | None = None  # None: every assisted channel
    segments: frozenset[str] | None = None  # None: every segment
    membership: str = "static"
    members: tuple[str, ...] = ()
    capacity: int | None = None
    lift: Mapping[str, float] = field(default_factory=dict)
    description: str = ""
    name: Mapping[str, str] = field(default_factory=dict)  # language -> display name

    @property
    def all_activities(self) -> bool:
        """Whether the pool takes every activity: ``general`` alone (its list is empty)."""
        return self.id == GENERAL

    def display_name(self, language: str | None) -> str:
        """The pool's name for a reader of ``language`` (see ``name_in``)."""
        return name_in(self.name, language, self.id)

    def serves(self, activity: str, channel: str | None, language: str | None, segment) -> bool:
        """Whether a contact may go to this pool for ``activity`` (``general`` takes all)."""
        if self.id != GENERAL and activity not in self.activities:
            return False
        if self.channels is not None and channel not in self.channels:
            return False
        if self.languages is not None and (
            language is None or primary_language(language) not in self._primary_languages
        ):
            return False
        # Segments in their normal spelling, as the API loads a contact's: a log read
        # offline may spell them otherwise.
        return self.segments is None or (
            isinstance(segment, str) and normal_category(segment) in self.segments
        )

    @cached_property  # serves() runs for every pool of every routed decision
    def _primary_languages(self) -> frozenset[str]:
        return frozenset(primary_language(tag) for tag in self.languages or ())

    def lift_for(self, activity: str) -> float:
        """Proficiency lift of the pool's members at ``activity`` (1.0: an average agent)."""
        return float(self.lift.get(activity, 1.0))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id}
        if self.name:
            data["name"] = dict(sorted(self.name.items()))
        if self.description:
            data["description"] = self.description
        data["activities"] = [a for a in VALUE_ACTIVITIES if a in self.activities]
        if self.all_activities:
            # Said, not left to the empty list: read alone it would mean "no activity".
            data["all_activities"] = True
        for name in ("languages", "channels", "segments"):
            values = getattr(self, name)
            if values is not None:
                data[name] = sorted(values)
        data["membership"] = self.membership
        data["members"] = list(self.members)
        if self.capacity is not None:
            data["capacity"] = self.capacity
        if self.lift:
            data["lift"] = {a: round(float(v), LIFT_DECIMALS) for a, v in sorted(self.lift.items())}
        return data


@dataclass(frozen=True)
class PoolConfig:
    pools: tuple[Pool, ...]

    @property
    def general(self) -> Pool:
        return self.by_id()[GENERAL]

    def by_id(self) -> Mapping[str, Pool]:
        """Pools by id (read-only: shared by every caller of this config)."""
        return self._by_id

    @cached_property  # every routed decision looks pools up: built once per config
    def _by_id(self) -> dict[str, Pool]:
        return {p.id: p for p in self.pools}

    def to_dict(self) -> dict[str, Any]:
        return {"pools": [p.to_dict() for p in self.pools]}

    def with_pools(self, pools: list[Pool]) -> PoolConfig:
        return replace(self, pools=tuple(pools))


def _names(entry: Mapping[str, Any], key: str, where: str) -> frozenset[str] | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise PoolError(f"{where}: {key} must be a list")
    if not value:
        raise PoolError(f"{where}: {key} is empty (omit it to allow every value)")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise PoolError(f"{where}: {key} must hold non-empty strings")
    return frozenset(value)


def _segments(entry: Mapping[str, Any], where: str) -> frozenset[str] | None:
    """The segments in the spelling the API loads a contact's (``normal_category``): a
    pool for "Enterprise" would otherwise never match a contact's "enterprise"."""
    names = _names(entry, "segments", where)
    return None if names is None else frozenset(normal_category(name) for name in names)


def name_in(names: Mapping[str, str] | None, language: str | None, fallback: str) -> str:
    """A display name for a reader of ``language``: theirs (``ja`` for ``ja-JP``), else
    English, else ``fallback`` (the pool id: configs without names show ids, as before).
    Talk tracks fall back to English the same way."""
    names = names or {}
    return (
        names.get(primary_language(language or "")) or names.get(FALLBACK_NAME_LANGUAGE) or fallback
    )


def _name(entry: Mapping[str, Any], where: str) -> dict[str, str]:
    value = entry.get("name")
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not value:
        raise PoolError(f"{where}: name must map languages to names, e.g. {{en: ..., ja: ...}}")
    names: dict[str, str] = {}
    for language, text in value.items():
        if not isinstance(language, str) or not NAME_LANGUAGE.match(language):
            raise PoolError(f"{where}: name: {language!r} is not a language code such as en or ja")
        # One line of a table cell or a desk panel: no line breaks or other controls.
        if (
            not isinstance(text, str)
            or not text.strip()
            or len(text) > MAX_NAME
            or any(ch < " " or ch == "\x7f" for ch in text)
        ):
            raise PoolError(f"{where}: name.{language} must be one line of 1-{MAX_NAME} characters")
        # Routing joins several reasons with "; " (models.matching), and a desk splits a
        # joined sentence there to write it again in the other language.
        if "; " in text:
            raise PoolError(f"{where}: name.{language} must not contain '; '")
        names[language] = text.strip()
    return names


def _languages(entry: Mapping[str, Any], where: str) -> frozenset[str] | None:
    """The pool's languages as canonical tags: ``JA_jp`` would otherwise never match a
    contact, whose tag the API stores as ``ja-JP``."""
    tags = _names(entry, "languages", where)
    if tags is None:
        return None
    for tag in sorted(tags):
        problem = language_tag_problem(tag)
        if problem:
            raise PoolError(f"{where}: languages: {tag!r} is not {problem}")
    return frozenset(canonical_language(tag) for tag in tags)


def parse_pool(entry: Any, index: int, strict: bool = True) -> Pool:
    if not isinstance(entry, Mapping):
        raise PoolError(f"pools[{index}]: must be a mapping")
    pool_id = entry.get("id")
    if not isinstance(pool_id, str) or not POOL_ID.match(pool_id):
        raise PoolError(
            f"pools[{index}]: id must be 1-64 lowercase letters, digits, '_', '.' or '-'"
        )
    where = f"pool {pool_id!r}"
    unknown_keys = set(entry) - POOL_KEYS
    if unknown_keys:
        raise PoolError(f"{where}: unknown keys {sorted(unknown_keys)}")
    activities = _names(entry, "activities", where) if entry.get("activities") else frozenset()
    unknown = set(activities or ()) - set(VALUE_ACTIVITIES)
    if unknown:
        raise PoolError(
            f"{where}: unknown activities {sorted(unknown)}; "
            f"choose from {', '.join(VALUE_ACTIVITIES)}"
        )
    channels = _names(entry, "channels", where)
    if channels is not None:
        bad = channels - set(CHANNELS)
        if bad:
            raise PoolError(f"{where}: unknown channels {sorted(bad)}")
        if SELF_SERVICE in channels:
            raise PoolError(
                f"{where}: self_service contacts get digital content, not an agent pool"
            )
    all_activities = entry.get("all_activities")
    if all_activities is not None and not isinstance(all_activities, bool):
        raise PoolError(f"{where}: all_activities must be true or false")
    if pool_id == GENERAL:
        # The last fallback takes every contact and every agent answers it: a list of
        # activities or members would read as a limit that routing never applies.
        if activities or all_activities is False:
            raise PoolError(f"{where}: it takes every activity: leave activities empty")
        if entry.get("members"):
            raise PoolError(f"{where}: every agent answers it: list no members")
        # `static` is how configs stored before `all_agents` existed wrote general.
        if entry.get("membership") not in (None, "static", ALL_AGENTS):
            raise PoolError(
                f"{where}: every agent answers it: membership is {ALL_AGENTS} (or omit it)"
            )
        membership = ALL_AGENTS
    else:
        if all_activities:
            raise PoolError(f"{where}: only {GENERAL!r} takes every activity: list the activities")
        membership = entry.get("membership") or ("static" if entry.get("members") else None)
        if membership is None:
            raise PoolError(
                f"{where}: empty pool: list its members or set membership: proficiency "
                "(filled by `vea pools rebuild`)"
            )
        if membership not in MEMBERSHIPS:
            raise PoolError(f"{where}: membership must be one of {', '.join(MEMBERSHIPS)}")
        if membership == ALL_AGENTS:
            raise PoolError(
                f"{where}: only {GENERAL!r} is answered by every agent: membership must be "
                "static or proficiency"
            )
    members_raw = entry.get("members") or []
    if not isinstance(members_raw, list | tuple):
        raise PoolError(f"{where}: members must be a list of agent ids")
    members: list[str] = []
    seen: set[str] = set()
    for agent in members_raw:
        if not isinstance(agent, str) or not 1 <= len(agent) <= MAX_ID:
            raise PoolError(f"{where}: agent ids are strings of 1-{MAX_ID} characters")
        # As an outcome's agent_id: a member the outcome endpoint would refuse could never
        # be measured, nor match the agent who handled a contact.
        problem = id_problem(agent)
        if problem is not None:
            raise PoolError(f"{where}: member {agent!r}: {problem} (as an outcome's agent_id)")
        if agent in seen:
            raise PoolError(f"{where}: duplicate agent {agent!r}")
        seen.add(agent)
        members.append(agent)
    if membership == "static" and not members:
        raise PoolError(f"{where}: empty pool: a static pool needs at least one member")
    capacity = entry.get("capacity")
    if capacity is not None and (
        isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1
    ):
        raise PoolError(f"{where}: capacity must be a whole number >= 1")
    lift_raw = entry.get("lift") or {}
    if not isinstance(lift_raw, Mapping):
        raise PoolError(f"{where}: lift must map activities to numbers")
    lift: dict[str, float] = {}
    for activity, value in lift_raw.items():
        if activity not in VALUE_ACTIVITIES:
            raise PoolError(f"{where}: lift of unknown activity {activity!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PoolError(f"{where}: lift.{activity} must be a number")
        if not (math.isfinite(value) and MIN_LIFT <= value <= MAX_LIFT):
            raise PoolError(f"{where}: lift.{activity} must be in [{MIN_LIFT}, {MAX_LIFT}]")
        # Routing reads a pool's lift only for an activity it serves (general: every one).
        if pool_id != GENERAL and activity not in activities:
            if not strict:
                continue  # a config stored by an earlier release: the lift did nothing
            raise PoolError(
                f"{where}: lift.{activity}: the pool does not serve {activity} "
                f"(activities: {', '.join(sorted(activities)) or 'none'}); list it in "
                "activities or remove the lift"
            )
        lift[activity] = float(value)
    description = entry.get("description") or ""
    if not isinstance(description, str) or len(description) > 500:
        raise PoolError(f"{where}: description must be text of at most 500 characters")
    return Pool(
        id=pool_id,
        activities=frozenset(activities or ()),
        languages=_languages(entry, where),
        channels=channels,
        segments=_segments(entry, where),
        membership=membership,
        members=tuple(members),
        capacity=capacity,
        lift=lift,
        description=description,
        name=_name(entry, where),
    )


def parse_config(data: Any, strict: bool = True) -> PoolConfig:
    """Validate a pools config (the YAML file's or the API's mapping). Not ``strict``
    (reading a config stored or deployed by an earlier release), a pool that serves
    nothing and a lift for an activity its pool does not serve are read as they routed
    then (never receiving a contact; ignored) instead of refused."""
    if not isinstance(data, Mapping):
        raise PoolError("a pools config is a mapping with a `pools` list")
    unknown = set(data) - {"pools"}
    if unknown:
        raise PoolError(f"unknown top-level keys {sorted(unknown)} (only `pools`)")
    entries = data.get("pools")
    if not isinstance(entries, list) or not entries:
        raise PoolError("`pools` must be a non-empty list")
    pools = [parse_pool(entry, i, strict) for i, entry in enumerate(entries)]
    ids: set[str] = set()
    for pool in pools:
        if pool.id in ids:
            raise PoolError(f"duplicate pool id {pool.id!r}")
        ids.add(pool.id)
    if GENERAL not in ids:
        raise PoolError(
            f"missing the {GENERAL!r} pool: it is the last fallback of every route and must "
            "always exist"
        )
    general = next(p for p in pools if p.id == GENERAL)
    if general.languages or general.channels or general.segments:
        raise PoolError(f"pool {GENERAL!r} takes every contact: no languages/channels/segments")
    # Last, so every other fault is named first. Routing sends a pool only the activities
    # it lists (Pool.serves): one listing none, a proficiency pool too, would be stored
    # and never receive a contact.
    for pool in pools if strict else ():
        if pool.id != GENERAL and not pool.activities:
            raise PoolError(
                f"pool {pool.id!r}: activities: list the value activities it serves (choose "
                f"from {', '.join(VALUE_ACTIVITIES)}); with none it never receives a contact"
            )
    return PoolConfig(tuple(pools))


def _read_text(path: Path) -> str:
    """The file's text; ``PoolError`` naming the file when it is not UTF-8 (a YAML file
    saved in Shift_JIS, say): the bare codec error named neither the file nor the fix."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PoolError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8"
        ) from None


def load_config(path: str | Path, strict: bool = True) -> PoolConfig:
    path = Path(path)
    text = _read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PoolError(f"{path}: not valid YAML: {exc}") from None
    try:
        return parse_config(data, strict)
    except PoolError as exc:
        raise PoolError(f"{path}: {exc}") from None


# ------------------------------------------------------------- self-service content
@dataclass(frozen=True)
class ContentItem:
    content_id: str
    title: str
    language: str


@dataclass(frozen=True)
class ContentCatalogue:
    """Digital content per value activity and language, for self-service channels."""

    items: Mapping[str, Mapping[str, ContentItem]]  # activity -> language -> item
    default_language: str = "en"

    def find(self, activity: str, language: str | None) -> ContentItem | None:
        """The item in ``language``, else in its primary language (a ja-JP customer reads
        the ja item), else in the default language."""
        entries = self.items.get(activity) or {}
        return (
            entries.get(language or "")
            or entries.get(primary_language(language or ""))
            or entries.get(self.default_language)
        )


def parse_catalogue(data: Any) -> ContentCatalogue:
    if not isinstance(data, Mapping) or not isinstance(data.get("content"), Mapping):
        raise PoolError("a content catalogue is a mapping with a `content` mapping")
    items: dict[str, dict[str, ContentItem]] = {}
    ids: set[str] = set()
    for activity, by_language in data["content"].items():
        if activity not in (*VALUE_ACTIVITIES, NONE):
            raise PoolError(f"content: unknown activity {activity!r}")
        if not isinstance(by_language, Mapping) or not by_language:
            raise PoolError(f"content.{activity}: map languages to {{id, title}}")
        for language, entry in by_language.items():
            where = f"content.{activity}.{language}"
            if not isinstance(entry, Mapping) or not entry.get("id") or not entry.get("title"):
                raise PoolError(f"{where}: needs an id and a title")
            if entry["id"] in ids:
                raise PoolError(f"{where}: duplicate content id {entry['id']!r}")
            ids.add(entry["id"])
            items.setdefault(activity, {})[str(language)] = ContentItem(
                str(entry["id"]), str(entry["title"]), str(language)
            )
    for activity in VALUE_ACTIVITIES:
        for language in ("ja", "en"):
            if language not in items.get(activity, {}):
                raise PoolError(f"content: no {language} entry for {activity}")
    return ContentCatalogue(items)


def load_catalogue(path: str | Path | None = None) -> ContentCatalogue:
    """The catalogue at ``path``, or the one shipped in ``models/content``."""
    if path is None:
        text = resources.files("models").joinpath("content/self_service.yaml").read_text("utf-8")
    else:
        text = _read_text(Path(path))
    return parse_catalogue(yaml.safe_load(text))
