"""The compiled fast path of ``Schema.load`` (service.fast_load) returns exactly what
marshmallow returns, or defers to it; and it does serve the usual request bodies."""

from __future__ import annotations

import inspect
from datetime import datetime

import marshmallow as ma
import pytest
from core_fixtures import decision_request, simulated
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import fields, post_load

from service import schemas
from service.fast_load import DEFER, compile_loader

REQUEST_SCHEMAS = [
    cls()
    for _, cls in inspect.getmembers(schemas, inspect.isclass)
    if issubclass(cls, ma.Schema) and cls.__module__ == schemas.__name__
]
COMPILED = [(s, compile_loader(s)) for s in REQUEST_SCHEMAS]
COMPILED = [(s, loader) for s, loader in COMPILED if loader is not None and s.load_fields]


def _ordered(value):
    """Compare key order too (answers and stored rows keep the schema's order)."""
    if isinstance(value, dict):
        return [(k, _ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return (type(value).__name__, value)


def _marshmallow(schema: ma.Schema, data):
    """marshmallow alone, nested schemas included (no fast path anywhere)."""
    fast = schemas.Schema.load
    schemas.Schema.load = ma.Schema.load
    try:
        return ma.Schema.load(schema, data)
    except ma.ValidationError as exc:
        return exc
    finally:
        schemas.Schema.load = fast


def _agrees(schema: ma.Schema, loader, data) -> bool:
    """True when the fast path answered (False: it deferred); fails on a disagreement."""
    fast = loader(data)
    if fast is DEFER:
        return False
    reference = _marshmallow(schema, data)
    assert not isinstance(reference, ma.ValidationError), (data, reference.messages)
    assert _ordered(fast) == _ordered(reference), data
    return True


def _requests(n: int = 300) -> list[dict]:
    log, _ = simulated(2000, 3)
    return [decision_request(row) for row in log.head(n).itertuples()]


def test_the_request_schemas_are_compiled():
    names = {type(s).__name__ for s, _ in COMPILED}
    assert {"DecisionRequestSchema", "CustomerSchema", "ContactSchema"} <= names
    assert {"EventRequestSchema", "PromoteRequestSchema"} & names


def test_real_decision_requests_take_the_fast_path_and_match_marshmallow():
    schema = schemas.DecisionRequestSchema()
    loader = compile_loader(schema)
    bodies = _requests()
    bodies[0]["contact"]["occurred_at"] = "2026-11-26T10:00:00+09:00"  # a general field
    bodies[1]["features"] = {"plan": "gold", "devices": 3, "vip": True, "score": None}
    for body in bodies:
        assert _agrees(schema, loader, body)
    # and through the schema's own load (the path the API takes)
    loaded = schema.load(bodies[0])
    assert loaded["contact"]["occurred_at"] == datetime.fromisoformat("2026-11-26T10:00:00+09:00")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("interaction_id"),  # required
        lambda b: b.update(interaction_id=""),  # Length
        lambda b: b.update(interaction_id=7),  # not a string
        lambda b: b["contact"].update(channel="fax"),  # OneOf
        lambda b: b["customer"].update(tenure_months=-1),  # Range
        lambda b: b["customer"].update(tenure_months="12"),  # marshmallow coerces: defer
        lambda b: b["customer"].update(tenure_months=True),
        lambda b: b["customer"].update(prior_contacts_30d=2.0),  # strict Integer
        lambda b: b["customer"].update(customer_id=None),  # not nullable
        lambda b: b["customer"].update(unknown_field=1),  # unknown key
        lambda b: b.update(contact="chat"),  # Nested of a non-dict
        lambda b: b["contact"].update(issue_type="bill\x00ing"),  # the pre_load hook
        lambda b: b["contact"].update(occurred_at="1900-01-01T00:00:00Z"),  # callable
        lambda b: b.update(features={str(i): i for i in range(51)}),  # Dict validator
        lambda b: b["customer"].update(tenure_months=10**400),  # overflows a float
    ],
)
def test_invalid_or_unusual_values_defer_to_marshmallow(mutate):
    schema = schemas.DecisionRequestSchema()
    body = _requests(1)[0]
    mutate(body)
    assert compile_loader(schema)(body) is DEFER
    # the schema's own load then raises exactly marshmallow's error, or coerces
    reference = _marshmallow(schema, body)
    try:
        assert _ordered(schema.load(body)) == _ordered(reference)
    except ma.ValidationError as exc:
        assert exc.messages == reference.messages


def test_schemas_with_hooks_it_cannot_reproduce_are_not_compiled():
    class WithPostLoad(schemas.Schema):
        name = fields.String()

        @post_load
        def _upper(self, data, **_kwargs):
            return {"name": data["name"].upper()}

    class DottedAttribute(schemas.Schema):
        name = fields.String(attribute="person.name")

    class FieldHook(schemas.Schema):
        name = fields.String(allow_none=True, pre_load=[lambda v: "filled" if v is None else v])

    assert compile_loader(WithPostLoad()) is None
    assert compile_loader(DottedAttribute()) is None
    assert DottedAttribute().load({"name": "a"}) == {"person": {"name": "a"}}
    assert compile_loader(FieldHook()) is None
    assert FieldHook().load({"name": None}) == {"name": "filled"}
    assert WithPostLoad().load({"name": "a"}) == {"name": "A"}
    assert compile_loader(schemas.DecisionRequestSchema(many=True)) is None
    assert compile_loader(schemas.DecisionRequestSchema(partial=True)) is None


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _mutated_requests():
    paths = [
        (),
        ("customer",),
        ("contact",),
        ("features",),
    ]
    keys = [
        "interaction_id", "customer_id", "segment", "persona", "tenure_months",
        "switching_effort", "prior_contacts_30d", "language", "channel", "issue_type",
        "sentiment", "occurred_at", "features", "customer", "contact", "extra",
    ]  # fmt: skip
    base = st.sampled_from(_requests(50))
    edit = st.tuples(st.sampled_from(paths), st.sampled_from(keys), JSON | st.just("__drop__"))
    return st.tuples(base, st.lists(edit, max_size=3))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_requests())
def test_mutated_decision_requests_agree_with_marshmallow(case):
    import copy

    body, edits = case
    body = copy.deepcopy(body)
    for path, key, value in edits:
        target = body
        for step in path:
            target = target.get(step) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if value == "__drop__":
            target.pop(key, None)
        else:
            target[key] = value
    schema = schemas.DecisionRequestSchema()
    _agrees(schema, compile_loader(schema), body)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_json_agrees_with_marshmallow_for_every_compiled_schema(data):
    schema, loader = data.draw(st.sampled_from(COMPILED))
    keys = list(schema.load_fields)
    body = data.draw(st.dictionaries(st.sampled_from(keys) | st.text(max_size=4), JSON))
    _agrees(schema, loader, body)
