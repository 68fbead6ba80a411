"""``/v1/reports``: the value report (does it pay, against the holdout), drift, and the
organic value agents find without vea's suggestion.

Unknown query parameters are refused (422): a mistyped `form=` must not silently report
the whole history. Each report is computed in a slot of ``service.heavy``: with every
slot of the instance taken, 429 at once (Retry-After), the decisions keep their workers.
"""

from __future__ import annotations

from marshmallow import RAISE

from models.schema import parse_reward
from service import heavy, reports
from service.api.common import Blueprint, protected
from service.auth import require
from service.config import ValueConfigError
from service.db import to_naive_utc
from service.errors import ApiError, ErrorSchema
from service.schemas import (
    DriftReportSchema,
    OrganicReportQuerySchema,
    OrganicReportSchema,
    ReportQuerySchema,
    ValueReportQuerySchema,
    ValueReportSchema,
)
from service.state import state


def _period(args: dict):
    start, end = args.get("from_"), args.get("to")
    return (
        to_naive_utc(start) if start is not None else None,
        to_naive_utc(end) if end is not None else None,
    )


def blueprint() -> Blueprint:
    blp = Blueprint(
        "reports", __name__, url_prefix="/v1/reports", description="Value and drift reports."
    )

    @blp.route("/value", methods=["GET"])
    @require("reports")
    @protected(blp)
    @blp.arguments(ValueReportQuerySchema(), location="query", unknown=RAISE)
    @blp.response(200, ValueReportSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="bad period or reward")
    @blp.alt_response(
        503,
        schema=ErrorSchema,
        description="the value config file (VEA_VALUE_CONFIG) no longer reads: the message "
        "names its field; an operator mends it, no restart needed",
    )
    @heavy.slot()
    def value_report(args):
        """VES, success, the named reward, offers (suggested, offered, accepted when
        offered), handle time, CSAT and retention by activity, segment, issue type,
        channel, pool and agent; uplift over the randomized holdout with 95% intervals;
        ROI; which success measures were declared before the period; and champion vs
        shadow challenger on the live log (DR, 95% interval, gate verdict: a live glance,
        `vea evaluate --shadow` is the thorough offline comparison)."""
        st = state()
        reward = (
            parse_reward(args["reward"], args.get("reward_weights")) if args.get("reward") else None
        )
        try:
            return reports.value(st.engine, st.settings, *_period(args), reward=reward)
        except ValueConfigError as exc:  # edited since the start, and now wrong
            raise ApiError(
                503,
                f"the value report cannot be made: {exc}",
                headers={"Retry-After": str(st.settings.retry_after_s)},
            ) from None

    @blp.route("/drift", methods=["GET"])
    @require("reports")
    @protected(blp)
    @blp.arguments(ReportQuerySchema(), location="query", unknown=RAISE)
    @blp.response(200, DriftReportSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="bad period")
    @heavy.slot()
    def drift_report(args):
        """PSI per feature (the period's decisions vs the champion's training data) and
        calibration (predicted openness vs observed success by band). The gauges
        `vea_feature_psi` and `vea_calibration_gap` are not this report's: they follow the
        last `VEA_DRIFT_WINDOW_H` hours, whatever period a report asks for."""
        st = state()
        return reports.drift(st.engine, st.settings, st.models.registry, *_period(args))

    @blp.route("/organic", methods=["GET"])
    @require("reports")
    @protected(blp)
    @blp.arguments(OrganicReportQuerySchema(), location="query", unknown=RAISE)
    @blp.response(200, OrganicReportSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="bad period, features or minimum")
    @heavy.slot()
    def organic_report(args):
        """Value activities agents offered that vea did not suggest, by situation (segment
        and issue type unless `by` says otherwise): attempts, success with its 95% Wilson
        interval, how often vea suggests the activity there, and the candidates to
        suggest next (success above every attempt's, vea suggesting it in under half the
        situation's contacts). Observational: agents choose whom to try."""
        st = state()
        return reports.organic(
            st.engine, *_period(args), situation=args["by"], min_attempts=args["min_attempts"]
        )

    return blp
