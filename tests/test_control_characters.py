"""``service.schemas.has_control_characters``: the quick test on the body's JSON dump
answers as a walk of every string would, for any body."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from models.pools import CONTROL
from service.schemas import has_control_characters


def walked(value: object) -> bool:
    if isinstance(value, str):
        return CONTROL.search(value) is not None
    if isinstance(value, dict):
        return any(walked(k) or walked(v) for k, v in value.items())
    if isinstance(value, list):
        return any(walked(item) for item in value)
    return False


# Every character class that matters: the refused controls, tab and line feed (allowed),
# DEL, quotes and backslashes (escaped in JSON), non-ASCII, lone surrogates.
text = st.text(
    alphabet=st.sampled_from(
        ["a", "é", "値", "\x00", "\x01", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1f"]
        + ["\x7f", "\x80", '"', "\\", "/", "\ud800", " "]
    ),
    max_size=6,
)
bodies = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(bodies)
def test_answers_as_a_walk_of_every_string(body: object) -> None:
    assert has_control_characters(body) is walked(body)


def test_nesting_deeper_than_a_dump_allows_is_walked() -> None:
    body: object = "\r"
    for _ in range(400):
        body = [body]
    assert has_control_characters(body)
    assert not has_control_characters([[[["plain"]]]])
