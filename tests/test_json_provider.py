"""The service's JSON encoding: valid JSON whatever the values."""

from __future__ import annotations

import json

import numpy as np

from service.json_provider import dumps_bytes, dumps_text


def test_non_finite_numbers_become_null_and_numpy_values_plain():
    data = {"a": float("nan"), "b": np.float64(0.25), "c": [np.int64(3), float("inf")]}
    assert json.loads(dumps_bytes(data)) == {"a": None, "b": 0.25, "c": [3, None]}


def test_integers_beyond_64_bits_are_written_not_refused():
    data = {"big": 2**70, "nested": [{"x": float("nan")}], "text": "日本語"}
    assert json.loads(dumps_text(data)) == {"big": 2**70, "nested": [{"x": None}], "text": "日本語"}
