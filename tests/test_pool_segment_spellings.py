"""The API loads a contact's segment in lower case (models.schema.normal_category): a
pool configured for "Enterprise" (a file or PUT /v1/pools) matched no contact after that
change. Pool segments are kept in the same spelling; an offline log's own spelling
matches too."""

from __future__ import annotations

import math

from models.pools import parse_config


def config(segments: list[str]):
    return parse_config(
        {
            "pools": [
                {"id": "general"},
                {
                    "id": "b2b",
                    "activities": ["validate_purchase"],
                    "segments": segments,
                    "members": ["a1"],
                },
            ]
        }
    )


def test_a_pool_for_a_segment_spelt_otherwise_serves_the_contact():
    (b2b,) = [pool for pool in config(["Enterprise ", "Small Business"]).pools if pool.id == "b2b"]
    assert b2b.segments == frozenset({"enterprise", "small business"})
    for segment in ("enterprise", "Enterprise", "small business"):
        assert b2b.serves("validate_purchase", "chat", "en", segment), segment
    for segment in ("consumer", None, math.nan):
        assert not b2b.serves("validate_purchase", "chat", "en", segment), segment
