"""Prometheus metrics for ``/metrics``.

Two kinds, because web and worker run as many processes:
- request counters (producer POSTs by outcome) live in the process that answered; under
  gunicorn they use prometheus-client's multiprocess mode (gunicorn.conf.py sets
  ``PROMETHEUS_MULTIPROC_DIR`` before the fork, a fresh directory per run unless the deployer
  chose one) and are summed at scrape time; without that variable (``runserver``, tests)
  they are plain in-process counters;
- everything about the queue and the extractions is read from the ledger and Extraction rows
  at scrape time (``LedgerCollector``), so every web process reports the same figures the
  workers produced (SPEC §10). Totals over all rows are exposed as counters: the rows they
  count are never deleted (cleanup blanks transcripts, it keeps rows).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from typing import Any

from django.db import DatabaseError
from django.db.models import Count, Q, Sum
from prometheus_client import CollectorRegistry, Counter, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .. import dispatch, selectors
from ..extraction.base import TRANSIENT_CATEGORIES
from ..models import LIVE_TRIGGER, Extraction, ExtractionOutcome, JobStatus
from ..worker import breaker, governor, heartbeat

logger = logging.getLogger(__name__)

_REQUESTS = CollectorRegistry(auto_describe=True)
POSTS = Counter(
    "nexus_producer_posts",
    "POSTs to the producer by tenant, outcome (accepted, duplicate, stale, rejected) and rejection reason.",
    ["tenant", "outcome", "reason"],
    registry=_REQUESTS,
)
# The tenant label of a POST refused before its tenant was settled (a bad key, an unknown
# origin or X-Tenant-Id, a body over the byte limit): one fixed value, so the label's values
# are the tenants' slugs (rows an operator made) plus this one, never client input.
UNKNOWN_TENANT = "unknown"

TRUNCATED_TURNS = Counter(
    "nexus_producer_truncated_turns",
    "Assistant turns over the per-message limit, accepted with their head kept (marked truncatedFrom).",
    # A label (one value) so that, as for POSTS, multiprocess mode opens its file at the
    # first count, not at import: an unwritable directory then costs a count, never the app.
    ["limit"],
    registry=_REQUESTS,
)

# Seconds; from a fast offline extraction to a Claude call near its 30 s timeout, and for the
# pipeline latency the 5 s alert threshold sits on a bucket edge.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
# An error code from a response body becomes a label only if it looks like one of ours, so a
# label can never carry client input or grow without bound.
_CODE = re.compile(r"^[a-z_]{1,40}$")


def record_post(outcome: str, reason: str = "", tenant: str = "") -> None:
    """Count one producer POST: ``accepted``, ``duplicate``, ``stale`` or ``rejected`` (with
    reason), for the tenant it settled on (a slug from the tenants table, or ``unknown``)."""
    POSTS.labels(tenant=tenant or UNKNOWN_TENANT, outcome=outcome, reason=reason).inc()


def record_truncated(turns: int) -> None:
    """Count assistant turns truncated in an accepted POST (a lost count, never a lost POST)."""
    try:
        TRUNCATED_TURNS.labels(limit="message_chars").inc(turns)
    except OSError as exc:  # multiprocess files unwritable
        logger.warning("truncation metric not counted", extra={"error": type(exc).__name__})


def post_outcome(status_code: int, body: Any) -> tuple[str, str]:
    """(outcome, reason) of a producer response, from its status and JSON body flags."""
    body = body if isinstance(body, dict) else {}
    if status_code == 202:
        if body.get("duplicate"):
            return "duplicate", ""
        if body.get("stale"):
            return "stale", ""
        return "accepted", ""
    code = body.get("error")
    return "rejected", code if isinstance(code, str) and _CODE.match(code) else f"http_{status_code}"


def _histogram(name: str, documentation: str, field: str, *, where: Q | None = None) -> HistogramMetricFamily:
    """A cumulative histogram of a millisecond column of successful extractions, in SQL."""
    has_value = Q(outcome=ExtractionOutcome.OK, **{f"{field}__isnull": False}) & (where or Q())
    buckets = {
        f"le_{i}": Count("id", filter=has_value & Q(**{f"{field}__lte": bound * 1000}))
        for i, bound in enumerate(LATENCY_BUCKETS)
    }
    row = Extraction.objects.aggregate(count=Count("id", filter=has_value), total=Sum(field), **buckets)
    pairs = [(str(bound), row[f"le_{i}"]) for i, bound in enumerate(LATENCY_BUCKETS)]
    pairs.append(("+Inf", row["count"]))
    family = HistogramMetricFamily(name, documentation)
    family.add_metric([], pairs, sum_value=(row["total"] or 0) / 1000)
    return family


class LedgerCollector(Collector):
    """Queue and extraction figures read from the database at scrape time."""

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("nexus_ledger_up", "1 when the ledger could be read for this scrape.")
        try:
            families = list(self._families())
        except DatabaseError as exc:
            logger.warning("metrics: ledger unreadable", extra={"error": type(exc).__name__})
            families = []
        up.add_metric([], 1 if families else 0)
        yield up
        yield from families

    def _families(self) -> Iterator[Any]:
        yield from self._queue()
        yield from self._extractions()
        yield _histogram(
            "nexus_extraction_latency_seconds", "Extractor call duration (successful calls).", "latency_ms"
        )
        yield _histogram(
            "nexus_pipeline_latency_seconds",
            "From a visitor's POST to its result merged into the prospect (re-extractions not counted).",
            "pipeline_latency_ms",
            where=Q(trigger=LIVE_TRIGGER),
        )
        yield from self._operations()
        yield from self._webhooks()

    def _webhooks(self) -> Iterator[Any]:
        from datetime import timedelta

        from django.utils import timezone

        from prospects.models import DeliveryAttempt, DeliveryStatus, WebhookEndpoint

        since = timezone.now() - timedelta(hours=1)
        failed = DeliveryAttempt.objects.filter(at__gte=since).exclude(status_code__range=(200, 299)).count()
        yield GaugeMetricFamily(
            "nexus_webhook_failed_attempts_last_hour",
            "Webhook delivery attempts that got no 2xx (error, timeout, refused), last hour.",
            value=failed,
        )
        failing = (
            WebhookEndpoint.objects.filter(
                active=True, deliveries__status=DeliveryStatus.PENDING, deliveries__attempts__gt=0
            )
            .distinct()
            .count()
        )
        yield GaugeMetricFamily(
            "nexus_webhook_endpoints_failing",
            "Active webhook endpoints with a delivery being retried.",
            value=failing,
        )

    def _queue(self) -> Iterator[Any]:
        queue = selectors.queue_counts()
        by_status = dict.fromkeys(JobStatus.values, 0)
        by_status.update(selectors.job_status_counts())
        jobs = GaugeMetricFamily("nexus_jobs", "Jobs in the ledger by status.", labels=["status"])
        for status, count in by_status.items():
            jobs.add_metric([status], count)
        yield jobs
        yield GaugeMetricFamily(
            "nexus_oldest_pending_age_seconds",
            "Age of the oldest pending revision (0 when none).",
            value=queue["oldest_pending_age_s"],
        )
        window = selectors.extraction_window()
        recent = GaugeMetricFamily(
            "nexus_extractions_last_hour", "Extractor calls in the last hour by outcome.", labels=["outcome"]
        )
        recent.add_metric(["ok"], window["ok"])
        recent.add_metric(["failed"], window["failed"])
        yield recent
        yield GaugeMetricFamily(
            "nexus_extraction_error_rate",
            "Failed / all extractor calls, last hour.",
            value=window["error_rate"],
        )
        yield GaugeMetricFamily(
            "nexus_pipeline_latency_p95_seconds",
            "p95 POST-to-merged latency of visitor-triggered extractions, last hour.",
            value=window["p95_latency_s"],
        )
        alerts = GaugeMetricFamily(
            "nexus_alert_active", "1 while an alert threshold is crossed.", labels=["alert"]
        )
        # The configured thresholds (NEXUS_ALERT_*), so Prometheus rules compare the raw series
        # with these instead of writing each number a second time (deploy/prometheus/alerts.yml).
        thresholds = GaugeMetricFamily(
            "nexus_alert_threshold",
            "Each alert's configured threshold, in its figure's unit (jobs, seconds, ratio).",
            labels=["alert"],
        )
        for name, figure in selectors.alert_figures(queue, window).items():
            alerts.add_metric([name], 1 if figure["crossed"] else 0)
            thresholds.add_metric([name], figure["threshold"])
        yield alerts
        yield thresholds

    def _extractions(self) -> Iterator[Any]:
        totals = Extraction.objects.aggregate(
            input=Sum("input_tokens"),
            output=Sum("output_tokens"),
            cache_creation=Sum("cache_creation_tokens"),
            cache_read=Sum("cache_read_tokens"),
            cost=Sum("cost_usd"),
            retries=Count(
                "id", filter=Q(outcome=ExtractionOutcome.FAILED, error_category__in=TRANSIENT_CATEGORIES)
            ),
        )
        calls = CounterMetricFamily(
            "nexus_extractions", "Extractor calls by outcome and extractor.", labels=["outcome", "extractor"]
        )
        for row in Extraction.objects.values("outcome", "extractor").annotate(n=Count("id")).order_by():
            calls.add_metric([row["outcome"], row["extractor"]], row["n"])
        yield calls
        failures = CounterMetricFamily(
            "nexus_extraction_failures", "Failed extractor calls by error category.", labels=["category"]
        )
        failed = Extraction.objects.filter(outcome=ExtractionOutcome.FAILED)
        for by_category in failed.values("error_category").annotate(n=Count("id")).order_by():
            failures.add_metric([by_category["error_category"] or "unknown"], by_category["n"])
        yield failures
        yield CounterMetricFamily(
            "nexus_extraction_retries",
            "Failed transient extractor calls (each is retried with backoff until attempts run out).",
            value=totals["retries"],
        )
        tokens = CounterMetricFamily("nexus_extraction_tokens", "Tokens used by kind.", labels=["kind"])
        for kind in ("input", "output", "cache_creation", "cache_read"):
            tokens.add_metric([kind], totals[kind] or 0)
        yield tokens
        yield CounterMetricFamily(
            "nexus_extraction_cost_usd", "Extraction cost in US dollars.", value=float(totals["cost"] or 0)
        )

    def _operations(self) -> Iterator[Any]:
        sweeps = dispatch.sweeper_redispatch_total()
        if sweeps is not None:
            yield CounterMetricFamily(
                "nexus_sweeper_redispatches", "Jobs the sweeper published again (lost tasks).", value=sweeps
            )
        yield GaugeMetricFamily(
            "nexus_workers_up",
            "1 while a worker heartbeat is fresh.",
            value=1 if heartbeat.workers_alive() else 0,
        )
        yield GaugeMetricFamily(
            "nexus_extractor_paused",
            "1 while the circuit breaker pauses extraction.",
            value=1 if breaker.state() else 0,
        )
        yield from _governor_families(governor.status())


def _governor_families(state: dict[str, Any]) -> Iterator[Any]:
    """The rate governor's state, read from its Redis at scrape time (every process agrees)."""
    up = state.get("redis") == "up"
    yield GaugeMetricFamily(
        "nexus_governor_redis_up",
        "1 while the rate governor's shared state is reachable.",
        value=1 if up else 0,
    )
    yield CounterMetricFamily(
        "nexus_governor_fail_open",
        "Rate decisions made on a process's share because the governor's Redis was unreachable.",
        value=state["fail_open"],
    )
    if not up:
        return
    limits = GaugeMetricFamily(
        "nexus_governor_limit",
        "Per-minute limit in force by dimension (the configured one, or the API's lower report).",
        labels=["dimension"],
    )
    left = GaugeMetricFamily(
        "nexus_governor_capacity_left",
        "Capacity the governor can grant now, by dimension.",
        labels=["dimension"],
    )
    for dimension, limit in state["effective_limits"].items():
        limits.add_metric([dimension], limit)
        capacity = state["capacity_left"][dimension]
        if capacity is not None:
            left.add_metric([dimension], capacity)
    yield limits
    yield left
    yield GaugeMetricFamily(
        "nexus_governor_tightened",
        "1 while the API's rate-limit headers or a 429's retry-after tighten the governor.",
        value=1 if state["tightened"] else 0,
    )
    yield CounterMetricFamily(
        "nexus_governor_tightenings",
        "Times the API's rate-limit report tightened the governor.",
        value=state["tightenings"],
    )
    for name, key, documentation in (
        ("nexus_governor_deferrals", "deferrals", "Jobs deferred for want of rate capacity, by lane."),
        ("nexus_governor_grants", "granted", "Calls the governor let through, by lane."),
    ):
        family = CounterMetricFamily(name, documentation, labels=["lane"])
        for lane, count in state[key].items():
            family.add_metric([lane], count)
        yield family


class _InProcessRequests(Collector):
    def collect(self) -> Iterator[Any]:
        return iter(_REQUESTS.collect())


def request_registry() -> CollectorRegistry:
    """The request counters: summed over every process when multiprocess mode is on."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_InProcessRequests())
    return registry


def scrape_registry() -> CollectorRegistry:
    registry = request_registry()
    registry.register(LedgerCollector())
    return registry
