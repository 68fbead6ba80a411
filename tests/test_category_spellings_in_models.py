"""The API loads categories in one spelling (models.schema.normal_category: stripped,
lower case). A model that learned another spelling from a CRM's log ("Premium") still
knows a live decision's "premium": its encoder answers to the normal spelling of each
value it learned, unless that spelling is a value of its own or shared by two."""

from __future__ import annotations

import math

import pandas as pd

from models.features import FeatureEncoder
from models.schema import normal_category


def test_a_learned_spelling_answers_to_its_normal_one():
    frame = pd.DataFrame(
        {
            "segment": ["Premium", "consumer", "Small Business "],
            "issue_type": ["Web", "WEB", "web "],  # two spellings of one normal value
            "persona": ["Saver", "saver", "Planner"],  # the normal spelling is learned too
        }
    )
    encoder = FeatureEncoder(["segment", "issue_type", "persona"], ["tenure_months"]).fit(frame)

    def code(name: str, value: str) -> float:
        return encoder.encode_values({name: value})[encoder.categorical.index(name)]

    assert code("segment", "premium") == code("segment", "Premium")
    assert code("segment", "small business") == code("segment", "Small Business ")
    assert code("segment", "consumer") == code("segment", "consumer")
    # "web" would be "Web" or "WEB" (or "web "): unknown rather than a guess.
    assert math.isnan(code("issue_type", "web"))
    assert not math.isnan(code("issue_type", "WEB"))
    # "saver" is learned as itself: it keeps its own code, not "Saver"'s.
    assert code("persona", "saver") != code("persona", "Saver")
    assert math.isnan(code("segment", "enterprise"))

    # The same after the bundle's round trip, and the batch path keeps exact spellings.
    again = FeatureEncoder.from_dict(encoder.to_dict())
    assert again.encode_values({"segment": "premium"}) == encoder.encode_values(
        {"segment": "premium"}
    )
    assert encoder.to_dict()["vocabulary"]["segment"] == ["Premium", "Small Business ", "consumer"]


def test_the_normal_spelling():
    assert normal_category(" Complaint\u3000") == "complaint"
    assert normal_category("COMPLAINT") == "complaint"
