"""A compressed body is refused as such (415 naming Content-Encoding): it was read as
plain JSON, so gzip bytes answered "not valid UTF-8" and a plain body marked gzip was
stored as if the header were not there."""

from __future__ import annotations

import gzip
import json

from tests.test_api_decisions import decision_body


def test_a_body_with_a_content_encoding_is_refused_as_such(client, keys, new_id):
    body = json.dumps(decision_body(new_id)).encode()
    for sent, coding in ((gzip.compress(body), "gzip"), (body, "gzip"), (body, "br")):
        answer = client.post(
            "/v1/decisions",
            data=sent,
            headers={
                **keys["desktop"],
                "Content-Type": "application/json",
                "Content-Encoding": coding,
            },
        )
        assert answer.status_code == 415, answer.json
        assert answer.json["error"]["fields"] == {"Content-Encoding": [f"got {coding}"]}
    empty = client.post(  # an empty header says nothing: taken as none
        "/v1/decisions",
        data=json.dumps(decision_body(new_id)).encode(),
        headers={**keys["desktop"], "Content-Type": "application/json", "Content-Encoding": ""},
    )
    assert empty.status_code == 201, empty.json
    plain = client.post(
        "/v1/decisions",
        data=body,
        headers={
            **keys["desktop"],
            "Content-Type": "application/json",
            "Content-Encoding": "identity",
        },
    )
    assert plain.status_code == 201, plain.json
