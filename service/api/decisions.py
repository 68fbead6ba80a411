"""``/v1/decisions``: a decision per live contact, and its outcome; reading them back."""

from __future__ import annotations

from flask import current_app, g

from service import decisions as use_cases
from service.api import examples
from service.api.common import REPLAYED, Blueprint, created_or_replayed, protected
from service.auth import require
from service.errors import ErrorSchema
from service.schemas import (
    DecisionPathSchema,
    DecisionRequestSchema,
    DecisionSchema,
    OutcomeRequestSchema,
    OutcomeSchema,
    StoredDecisionSchema,
    SurveyRequestSchema,
    SurveySchema,
)
from service.state import state

DECISION_UPDATED = {
    "Decision-Updated": {
        "description": "`true`: the contact was decided again for changed details",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def blueprint() -> Blueprint:
    blp = Blueprint(
        "decisions",
        __name__,
        url_prefix="/v1/decisions",
        description="Decisions for live contacts and what happened after them.",
    )

    @blp.route("", methods=["POST"])
    @require("decisions")
    @protected(blp)
    @blp.arguments(DecisionRequestSchema(), example=examples.DECISION_REQUEST)
    @blp.response(
        201, DecisionSchema, description="decision made and stored", example=examples.DECISION
    )
    @blp.alt_response(
        200,
        schema=DecisionSchema,
        description="the stored decision (a retry with the same body: header "
        "`Idempotent-Replayed: true`), the decision made again for changed details (header "
        "`Decision-Updated: true`), or a degraded answer that could not be stored (database "
        "unavailable: `stored` is false)",
        headers={**REPLAYED, **DECISION_UPDATED},
    )
    @blp.alt_response(
        409,
        schema=ErrorSchema,
        description="interaction_id of another customer, or changed details after the "
        "decision's outcome was recorded",
    )
    @blp.alt_response(
        422,
        schema=ErrorSchema,
        description="invalid body, or a query parameter (it takes none)",
        example=examples.VALIDATION_ERROR,
    )
    def create_decision(body):
        """Decide for a live contact.

        Scores openness, ranks the five value activities, applies the contact policy,
        routes to a pool and stores the decision. The same `interaction_id` with the same
        body returns the stored decision (status 200, header `Idempotent-Replayed: true`).
        With changed details (the issue type became known) the contact is decided again
        under the same `decision_id`, replacing the stored decision (status 200, header
        `Decision-Updated: true`), until an outcome is recorded for it (then 409).
        """
        answer, how = use_cases.decide(state(), body, g.key_id)
        # The answer is built in DecisionSchema's shape (tests check dump(answer) ==
        # answer): dumping it through marshmallow again cost a tenth of the request.
        response = current_app.json.response(answer)
        if how == use_cases.CREATED:
            response.status_code = 201
        elif how == use_cases.REPLAYED:
            response.headers["Idempotent-Replayed"] = "true"
        elif how == use_cases.UPDATED:
            response.headers["Decision-Updated"] = "true"
        # UNSTORED: answered (degraded) but not stored: 200, nothing was created.
        return response

    @blp.route("/<decision_id>", methods=["GET"])
    @require("decisions")
    @protected(blp)
    @blp.arguments(DecisionPathSchema(), location="path", as_kwargs=True)
    @blp.response(
        200,
        StoredDecisionSchema,
        description="the stored decision, its outcome and its survey answers",
    )
    @blp.alt_response(404, schema=ErrorSchema, description="unknown decision")
    def get_decision(decision_id):
        """A stored decision as last answered, with its outcome once recorded (e.g. for a
        desktop that restarted mid-contact, or to check what was recorded)."""
        return use_cases.stored_decision(state(), decision_id)

    @blp.route("/<decision_id>/outcome", methods=["POST"])
    @require("outcomes")
    @protected(blp)
    @blp.arguments(DecisionPathSchema(), location="path", as_kwargs=True)
    @blp.arguments(OutcomeRequestSchema(), example=examples.OUTCOME_REQUEST)
    @blp.response(201, OutcomeSchema, description="outcome recorded", example=examples.OUTCOME)
    @blp.alt_response(
        200, schema=OutcomeSchema, description="the same outcome, already stored", headers=REPLAYED
    )
    @blp.alt_response(404, schema=ErrorSchema, description="unknown decision")
    @blp.alt_response(409, schema=ErrorSchema, description="a different outcome is stored")
    def record_outcome(body, decision_id):
        """Record what happened: activity offered, accepted, VES items, handle time, CSAT."""
        return created_or_replayed(*use_cases.record_outcome(state(), decision_id, body))

    @blp.route("/<decision_id>/survey", methods=["POST"])
    @require("outcomes")
    @protected(blp)
    @blp.arguments(DecisionPathSchema(), location="path", as_kwargs=True)
    @blp.arguments(SurveyRequestSchema(), example=examples.SURVEY_REQUEST)
    @blp.response(201, SurveySchema, description="survey answers recorded", example=examples.SURVEY)
    @blp.alt_response(
        200,
        schema=SurveySchema,
        description="these answers are already stored (header `Idempotent-Replayed: true`)",
        headers=REPLAYED,
    )
    @blp.alt_response(404, schema=ErrorSchema, description="unknown decision")
    @blp.alt_response(
        409,
        schema=ErrorSchema,
        description="an answer differs from one already recorded for the decision, by an "
        "earlier survey or by the outcome (code `survey_conflict`; `fields` names each)",
    )
    @blp.alt_response(
        422,
        schema=ErrorSchema,
        description="invalid body: no answer, an answer out of range, answered_at before the "
        "contact or in the future",
    )
    def record_survey(body, decision_id):
        """Record the post-contact survey: the VES items, CSAT, NPS, CES.

        For the survey system, hours or days after the contact. The answers fill what the
        agent's outcome lacks (and `ve_success`, VES top-2-box on both items, unless the
        outcome set it); before the outcome is recorded, or when it never is, they are
        kept, shown with the decision, and counted once the outcome arrives. Answers may
        come in several posts; a stored answer is never replaced (409).
        """
        return created_or_replayed(*use_cases.record_survey(state(), decision_id, body))

    return blp
