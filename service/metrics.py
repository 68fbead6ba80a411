"""Prometheus metrics, multiprocess-aware.

Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set by ``service/gunicorn_conf.py``
before any worker imports prometheus_client; every worker then writes its samples to
that directory and ``/metrics`` aggregates them all (prometheus_client's multiprocess
mode). Without it (tests, ``flask run``) each app has its own registry.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from models.activities import ACTIONS

# The causes service.serving and service.decisions count, and the shadow guard's verdicts.
DEGRADED_REASONS = ("no_model", "model_error", "database")
SHADOW_VERDICTS = ("ok", "slow", "error", "suspended")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SURVEY_OUTCOME_STATES = ("recorded", "pending")  # the ``outcome`` label of vea_surveys_total
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# The drift gauges (service.drift_monitor): name, label, help.
FEATURE_PSI, CALIBRATION_GAP = "vea_feature_psi", "vea_calibration_gap"
DRIFT_GAUGES = (
    (
        FEATURE_PSI,
        "feature",
        "Population stability index of a feature: the decisions of the last "
        "VEA_DRIFT_WINDOW_H hours vs the champion's training data (absent with too few)",
    ),
    (
        CALIBRATION_GAP,
        "band",
        "Observed success minus predicted openness, by openness band, over the last "
        "VEA_DRIFT_WINDOW_H hours (absent for a band with too few outcomes)",
    ),
)

log = logging.getLogger("vea.metrics")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self) -> None:
        # A registry per app: several apps in one process (tests) never collide. In
        # multiprocess mode the values go to files whatever registry holds them.
        self.registry = CollectorRegistry()
        self._children: dict[tuple, Any] = {}
        r = self.registry
        self.latency = Histogram(
            "vea_http_request_duration_seconds",
            "Request latency by endpoint",
            ["endpoint", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "vea_http_requests_total",
            "Requests by endpoint and status",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.decisions = Counter(
            "vea_decisions_total", "Decisions by suggested activity", ["activity"], registry=r
        )
        self.degraded = Counter(
            "vea_degraded_decisions_total",
            "Decisions answered in degraded mode, by cause (no_model, model_error, database)",
            ["reason"],
            registry=r,
        )
        self.outcomes = Counter(
            "vea_outcomes_total", "Outcomes recorded", ["activity", "offered"], registry=r
        )
        self.events = Counter("vea_customer_events_total", "Customer events", ["type"], registry=r)
        # Surveys whose answers were stored (a replay is not counted), by whether the
        # agent's outcome was already there: a steady share of "pending" is normal (the
        # survey outran the wrap-up), a growing one means outcomes are not being posted.
        self.surveys = Counter(
            "vea_surveys_total",
            "Survey answers recorded, by whether the decision's outcome was already recorded",
            ["outcome"],
            registry=r,
        )
        self.shadow = Counter(
            "vea_shadow_decisions_total",
            "Shadow challenger calls by verdict (ok, slow, error, suspended)",
            ["verdict"],
            registry=r,
        )
        self.model_info = Gauge(
            "vea_model_info",
            "1 for the model version each worker serves",
            ["version"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.model_warning = Gauge(
            "vea_model_warning",
            "1 while a worker serves a model a worker started now could not load (a newer "
            "champion failed to load, the bundle is damaged on disk, no champion is named)",
            registry=r,
            multiprocess_mode="liveall",
        )
        # Drift of the live traffic: declared as the gauges /metrics shows, but never set
        # here. Their values come whole from one computation the workers share
        # (service.drift_monitor, through ``drift``): a multiprocess gauge's series cannot
        # be removed, so a feature or band that dropped out would keep its last value.
        self.feature_psi, self.calibration_gap = (
            Gauge(name, documentation, [label], registry=None)
            for name, label, documentation in DRIFT_GAUGES
        )
        self.drift = DriftGauges()
        r.register(self.drift)

        # Known label values start at 0: a series that appears only at its first
        # increment hides that increment from rate() and leaves alerts on it empty
        # (a first degraded decision, a first shadow error) until the second one.
        for activity in ACTIONS:
            self.child(self.decisions, activity)
            for offered in ("true", "false"):  # as service.decisions writes them
                self.outcomes.labels(activity=activity, offered=offered)
        for reason in DEGRADED_REASONS:
            self.degraded.labels(reason=reason)
        for outcome in SURVEY_OUTCOME_STATES:
            self.surveys.labels(outcome=outcome)
        for verdict in SHADOW_VERDICTS:
            self.shadow.labels(verdict=verdict)

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, made once per label set: ``labels()`` validates
        and locks on every call, and every request counts a few samples."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def request_done(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        # Label values must come from a small set: a client inventing methods would
        # otherwise create a time series (and a cached child) per method.
        method = method if method in HTTP_METHODS else "other"
        self.child(self.latency, endpoint, method).observe(seconds)
        self.child(self.requests, endpoint, method, str(status)).inc()

    def set_model(self, previous: str | None, current: str | None) -> None:
        if previous:
            self.model_info.labels(version=previous).set(0)
        if current:
            self.model_info.labels(version=current).set(1)

    def set_model_warning(self, standing: bool) -> None:
        self.model_warning.set(1 if standing else 0)

    def render(self) -> tuple[bytes, str]:
        if multiprocess_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            registry.register(self.drift)  # not in the workers' files
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class DriftGauges(Collector):
    """``vea_feature_psi`` and ``vea_calibration_gap`` as ``source()`` (set by the app:
    ``service.drift_monitor.DriftMonitor.scraped``) gives them at each collection, one
    series per label value it names and no other."""

    def __init__(self) -> None:
        self.source: Callable[[], Mapping[str, Mapping[str, float]]] | None = None

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(name, doc, labels=[label]) for name, label, doc in DRIFT_GAUGES]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        values: Mapping[str, Mapping[str, float]] = {}
        if self.source is not None:
            try:
                values = self.source()
            except Exception as exc:  # /metrics answers, without these series
                log.error("drift gauges not shown", exc_info=exc)
        for name, label, documentation in DRIFT_GAUGES:
            family = GaugeMetricFamily(name, documentation, labels=[label])
            for key, value in sorted((values.get(name) or {}).items()):
                family.add_metric([key], value)
            yield family
