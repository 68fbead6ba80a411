"""Examples in the OpenAPI document: what an integrator sends and gets back.

They are real answers of the service, trimmed to one of each kind; tests check that each
request example is accepted by its schema and that each answer example has exactly the
fields a real answer has, so they cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

DECISION_REQUEST: dict[str, Any] = {
    "interaction_id": "call-2026-11-27-000124",
    "customer": {
        "customer_id": "c-48213",
        "segment": "consumer",
        "tenure_months": 2,
    },
    "contact": {
        "channel": "voice",
        "issue_type": "how_to",
        "sentiment": 0.2,
        "language": "en",
    },
}

DECISION: dict[str, Any] = {
    "decision_id": "988da6b021a075551ba475a776b65bf0",
    "interaction_id": "call-2026-11-27-000124",
    "model_version": "20261127T032657Z-model-2656",
    "openness": {"score": 0.60791, "band": "high", "attempt": True},
    "activities": [
        {
            "activity": "validate_purchase",
            "success_probability": 0.729864,
            "expected_value": 13.697272,
            "hint": "Reassure them that buying it was a wise choice, with one concrete benefit.",
            "reasons": ["2 months since purchase", "segment: consumer"],
        },
        {
            "activity": "anticipate_needs",
            "success_probability": 0.711507,
            "expected_value": 12.430131,
            "hint": "From today's need, point to what they will value next.",
            "reasons": ["sentiment +0.2", "segment: consumer"],
        },
        {
            "activity": "educate_usage",
            "success_probability": 0.735756,
            "expected_value": 12.31513,
            "hint": "Show the best way to use it, positively; never point out what they did wrong.",
            "reasons": ["sentiment +0.2", "issue type: how-to"],
        },
        {
            "activity": "achieve_goals",
            "success_probability": 0.595791,
            "expected_value": 8.915811,
            "hint": "Ask what they bought it for and outline the features that serve that goal.",
            "reasons": ["1 contact in the last 30 days", "language: English"],
        },
        {
            "activity": "advise_new_uses",
            "success_probability": 0.473898,
            "expected_value": 7.477965,
            "hint": "Introduce a new or untapped feature that fits how they use it.",
            "reasons": ["language: English", "issue type: how-to"],
        },
    ],
    "suggested_activity": "validate_purchase",
    "route": {
        "pool": "general",
        "pool_name": "General",
        "reason": "no value pool with qualified agents serves “Validate the purchase” for "
        "this contact: General pool (wait unknown)",
        "fallbacks": [],
        "activity": "validate_purchase",
        "expected_value": 13.69728,
        "expected_wait_s": None,
        "ranked": [
            {
                "pool": "general",
                "expected_value": 13.69728,
                "lift": 1.0,
                "expected_wait_s": None,
                "availability": "unknown",
                "within_limit": True,
            }
        ],
        "content": None,
        "propensity": 1.0,
        "pool_probabilities": {"general": 1.0},
    },
    "propensity": 1.0,
    "experiment_arm": "treatment",
    "degraded": False,
    "reasons": ["continues a chat contact made 12 min ago (issue: how-to)"],
    "contact_policy": {"allow_attempt": True, "blocked_activities": [], "reasons": []},
    "continuation": {
        "decision_id": "d419339585826b9be05b62bae6af75d6",
        "interaction_id": "chat-2026-11-27-000123",
        "occurred_at": "2026-11-27T03:15:08.914Z",
        "channel": "chat",
        "issue_type": "how_to",
        "activity": "validate_purchase",
        "outcome": {"offered": True, "accepted": True, "ve_success": True, "resolved": None},
    },
    "context": {
        "prior_contacts_30d": 1,
        "prior_contacts_source": "history",
        "issue_type_source": "request",
        "occurred_at": "2026-11-27T03:27:23.101Z",
    },
    "stored": True,
    "created_at": "2026-11-27T03:27:23.101Z",
}

OUTCOME_REQUEST: dict[str, Any] = {
    "offered": True,
    "accepted": True,
    "ves_confidence": 7,
    "ves_ability": 6,
    "resolved": True,
    "handle_time_s": 320,
    "csat": 5,
    "agent_id": "a-17",
}

OUTCOME: dict[str, Any] = {
    "decision_id": "988da6b021a075551ba475a776b65bf0",
    "activity": "validate_purchase",
    "offered": True,
    "accepted": True,
    "ve_success": True,
    "ves_confidence": 7,
    "ves_ability": 6,
    "resolved": True,
    "handle_time_s": 320.0,
    "csat": 5,
    "nps": None,
    "ces": None,
    "agent_id": "a-17",
    "pool_id": "general",
    "occurred_at": "2026-11-27T03:33:02.410Z",
    "recorded_at": "2026-11-27T03:33:02.410Z",
}

SURVEY_REQUEST: dict[str, Any] = {
    "survey_id": "svy-20261127-5521",
    "answered_at": "2026-11-27T09:12:40+09:00",
    "ves_confidence": 6,
    "ves_ability": 7,
    "csat": 5,
    "nps": 9,
    "ces": 2,
}

SURVEY: dict[str, Any] = {
    "decision_id": "988da6b021a075551ba475a776b65bf0",
    "survey_id": "svy-20261127-5521",
    "answered_at": "2026-11-27T00:12:40.000Z",
    "ves_confidence": 6,
    "ves_ability": 7,
    "csat": 5,
    "nps": 9,
    "ces": 2,
    "recorded_at": "2026-11-27T04:02:11.903Z",
    "updated_at": "2026-11-27T04:02:11.903Z",
    "outcome_recorded": True,
    "ve_success": True,
}

EVENT_REQUEST: dict[str, Any] = {"event_id": "crm-991", "type": "upgraded", "value": 120.0}

EVENT: dict[str, Any] = {
    "id": 1,
    "event_id": "crm-991",
    "customer_id": "c-48213",
    "type": "upgraded",
    "occurred_at": "2026-11-27T09:12:40.000Z",
    "value": 120.0,
    "recorded_at": "2026-11-27T09:12:40.211Z",
    "follows_decisions": 1,
}

VALIDATION_ERROR: dict[str, Any] = {
    "error": {
        "code": "validation_error",
        "message": "request body failed validation",
        "fields": {
            "contact": {"channel": ["Must be one of: voice, chat, email, messaging, self_service."]}
        },
    }
}
