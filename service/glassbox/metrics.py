"""Prometheus metrics: one `Metrics` per server instance, owning its registry and its /metrics endpoint.

A registry per instance (not prometheus-client's global one) lets several servers live in one process
(tests do) without sharing counters. Latencies are histograms whose buckets resolve 1 ms to 10 min, so
p50/p95/p99 come from `histogram_quantile` — unlike TorchServe's and Triton's cumulative counters.

Names follow the gRPC convention (`grpc_server_*`, labels `grpc_type`, `grpc_service`, `grpc_method`,
`grpc_code`) and `glassbox_*` for the service's own. The handling histogram carries `grpc_code` too, so
fast rejections do not hide in the latency of successful calls.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector

from glassbox.cache.port import CacheStats, Outcome
from glassbox.config import MetricsSettings
from glassbox.models.repository import ModelVersion
from glassbox.monitoring.record import DRIFT, ExplanationRecord

log = logging.getLogger(__name__)

EXPLANATION_GAUGES = {
    "pointing_game": "Pointing-game hit rate on the reference set's object masks, latest explanation check.",
    "relevance_mass": "Share of the positive relevance inside the object masks, latest explanation check.",
    "deletion_auc": "Deletion AUC (lower is more faithful), latest explanation check.",
    "insertion_auc": "Insertion AUC (higher is more faithful), latest explanation check.",
    "drift": "1 when the method's verdict is drift under the [monitoring.explanations] thresholds, else 0.",
}
"""glassbox_explanation_<name>{model, version, method}: one gauge per measurement of a method."""

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip
"""1 ms to 10 min, about three buckets per decade."""

LOOKUP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
"""Cache lookups: 100 µs to 1 s (a loopback Redis GET is a few hundred µs; a timeout shows as ≥ 0.25 s)."""


ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
"""Rows (or calls) per batch: powers of two up to the largest batch a model allows."""


class Metrics:
    """Every metric of one server; `start()` serves them on `settings.port` at `/metrics`. It is the cache
    service's `cache.port.CacheObserver` (the server plugs it in)."""

    def __init__(self, settings: MetricsSettings | None = None) -> None:
        self.settings = settings or MetricsSettings(enabled=False)
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        grpc = ("grpc_type", "grpc_service", "grpc_method")
        self.grpc_started = self._counter("grpc_server_started_total", "RPCs started on the server.", grpc)
        self.grpc_handled = self._counter(
            "grpc_server_handled_total", "RPCs completed on the server, by status code.", (*grpc, "grpc_code")
        )
        self.grpc_handling_seconds = self._histogram(
            "grpc_server_handling_seconds",
            "Time from an RPC's start to its last response message (streams: until the stream ends).",
            (*grpc, "grpc_code"),
        )
        self.grpc_in_flight = self._gauge("grpc_server_in_flight", "RPCs being handled now.", grpc)
        per_method = ("model", "method")
        self.compute_seconds = self._histogram(
            "glassbox_compute_seconds",
            "Time computing a result (hits compute nothing).",
            per_method,
        )
        self.cache_lookup_seconds = self._histogram(
            "glassbox_cache_lookup_seconds",
            "Time of one cache lookup, failed ones included.",
            ("backend",),
            buckets=LOOKUP_BUCKETS,
        )
        self.cache_hits = self._counter(
            "glassbox_cache_hits_total", "Results served from the cache.", per_method
        )
        self.cache_misses = self._counter(
            "glassbox_cache_misses_total",
            "Lookups that found nothing usable (absent, expired, corrupt).",
            per_method,
        )
        self.cache_errors = self._counter(
            "glassbox_cache_errors_total",
            "Cache operations that failed (the result was computed, or not stored), by operation get/set.",
            (*per_method, "operation"),
        )
        self.cache_rejected = self._counter(
            "glassbox_cache_rejected_total",
            "Stored values refused and treated as misses, by reason: signature (forged, moved or signed with "
            "another key) or malformed (foreign, truncated, an older format).",
            ("reason",),
        )
        self.passes = self._counter(
            "glassbox_passes_total", "Forward and backward passes through models.", ("method", "direction")
        )
        self.jobs = self._counter(
            "glassbox_jobs_total", "Jobs that reached a final state.", ("kind", "state")
        )
        self.job_seconds = self._histogram(
            "glassbox_job_duration_seconds", "Time from a job's start to its final state.", ("kind", "state")
        )
        self.queue_depth = self._gauge("glassbox_job_queue_depth", "Jobs waiting to run.", ("kind",))
        self.model_load_seconds = self._gauge(
            "glassbox_model_load_seconds", "How long loading a model version took.", ("model", "version")
        )
        self.robust_accuracy = self._gauge(
            "glassbox_robust_accuracy",
            "Accuracy under attack on the reference set, latest robustness evaluation.",
            ("model", "version", "attack", "epsilon"),
        )
        self.clean_accuracy = self._gauge(
            "glassbox_clean_accuracy",
            "Accuracy on the reference set without attack, latest robustness evaluation.",
            ("model", "version"),
        )
        self.minimal_epsilon_median = self._gauge(
            "glassbox_minimal_epsilon_median",
            "Median over the reference set of the smallest epsilon that fools the model (+Inf: most images "
            "withstand the largest searched), latest robustness evaluation.",
            ("model", "version"),
        )
        method_labels = ("model", "version", "method")
        self.explanation = {
            name: self._gauge(f"glassbox_explanation_{name}", help_text, method_labels)
            for name, help_text in EXPLANATION_GAUGES.items()
        }
        self.explanation_region_mass = self._gauge(
            "glassbox_explanation_region_mass",
            "Share of the positive relevance inside a named region of [monitoring.explanations], mean over "
            "the reference set, latest explanation check.",
            (*method_labels, "region"),
        )
        compared_labels = ("model", "version", "baseline_version", "method")
        self.explanation_similarity = self._gauge(
            "glassbox_explanation_similarity",
            "Mean Spearman rank correlation of |map| with the compared version's maps of the same images "
            "and targets, latest explanation check.",
            compared_labels,
        )
        self.explanation_ssim = self._gauge(
            "glassbox_explanation_ssim",
            "Mean SSIM of the maps with the compared version's, latest explanation check.",
            compared_labels,
        )
        self.explanation_top_k_overlap = self._gauge(
            "glassbox_explanation_top_k_overlap",
            "Mean share of the top-k% pixels the maps share with the compared version's, latest check.",
            compared_labels,
        )
        self.explanation_prediction_agreement = self._gauge(
            "glassbox_explanation_prediction_agreement",
            "Share of the reference images both versions give the same top-1 class, latest check.",
            ("model", "version", "baseline_version"),
        )
        self.queue_seconds = self._histogram(
            "glassbox_scheduler_queue_seconds",
            "Time from a call's admission by the compute scheduler to its first unit of work.",
            ("model", "priority"),
        )
        self.batch_rows = self._histogram(
            "glassbox_scheduler_batch_rows",
            "Network rows of each batch the compute scheduler ran (merged units of several calls).",
            ("model", "kind"),
            buckets=ROW_BUCKETS,
        )
        self.batch_calls = self._histogram(
            "glassbox_scheduler_batch_calls",
            "Calls whose units were merged into each batch.",
            ("model", "kind"),
            buckets=ROW_BUCKETS,
        )
        self.scheduler_calls = self._gauge(
            "glassbox_scheduler_calls", "Calls admitted and not finished, by priority class.", ("priority",)
        )
        self.scheduler_units = self._gauge(
            "glassbox_scheduler_units_waiting",
            "Units handed to the compute scheduler and not yet run (units in flight), by priority class.",
            ("priority",),
        )
        self.estimated_seconds = self._histogram(
            "glassbox_scheduler_estimated_seconds",
            "Device time a call was estimated to need at admission.",
            ("model", "call"),
        )
        self.measured_seconds = self._histogram(
            "glassbox_scheduler_measured_seconds",
            "Device time a call took (its units and its own code), for calls that had an estimate.",
            ("model", "call"),
        )
        self.refused = self._counter(
            "glassbox_admission_refused_total",
            "Calls the compute scheduler refused before any work, by reason (deadline, queue, memory).",
            ("reason",),
        )
        self.cache_entries = self._gauge("glassbox_cache_entries", "Entries in the in-process cache.")
        self.cache_bytes = self._gauge("glassbox_cache_bytes", "Bytes held by the in-process cache.")
        self._http: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def _counter(self, name: str, documentation: str, labels: tuple[str, ...]) -> Counter:
        return Counter(name.removesuffix("_total"), documentation, labels, registry=self.registry)

    def _histogram(
        self,
        name: str,
        documentation: str,
        labels: tuple[str, ...],
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
    ) -> Histogram:
        return Histogram(name, documentation, labels, buckets=buckets, registry=self.registry)

    def _gauge(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, documentation, labels, registry=self.registry)

    def observe_compute(self, model: str, method: str, seconds: float) -> None:
        self.compute_seconds.labels(model, method).observe(seconds)

    def observe_cache_lookup(
        self, backend: str, model: str, method: str, outcome: Outcome, seconds: float
    ) -> None:
        self.cache_lookup_seconds.labels(backend).observe(seconds)
        if outcome is Outcome.HIT:
            self.cache_hits.labels(model, method).inc()
        elif outcome is Outcome.MISS:
            self.cache_misses.labels(model, method).inc()
        else:
            self.cache_errors.labels(model, method, "get").inc()

    def count_cache_rejected(self, reason: str) -> None:
        self.cache_rejected.labels(reason).inc()

    def count_cache_store_error(self, model: str, method: str) -> None:
        self.cache_errors.labels(model, method, "set").inc()

    def count_passes(self, method: str, *, forward: int = 0, backward: int = 0) -> None:
        """Add the forward and backward passes one computation of `method` made."""
        if forward:
            self.passes.labels(method, "forward").inc(forward)
        if backward:
            self.passes.labels(method, "backward").inc(backward)

    def observe_job(self, kind: str, state: str, seconds: float) -> None:
        """Record a job that reached its final `state` (e.g. succeeded, failed, cancelled) after `seconds`."""
        self.jobs.labels(kind, state).inc()
        self.job_seconds.labels(kind, state).observe(seconds)

    def set_queue_depth(self, kind: str, depth: int) -> None:
        self.queue_depth.labels(kind).set(depth)

    def observe_model_load(self, entry: ModelVersion, seconds: float) -> None:
        """`ModelRepository(on_loaded=...)` hook."""
        self.model_load_seconds.labels(entry.name, entry.version).set(seconds)

    def observe_robustness(
        self,
        model: str,
        version: str,
        clean_accuracy: float,
        robust_accuracy: Iterable[tuple[str, float, float]],
        minimal_epsilon_median: float,
    ) -> None:
        """Set the robustness gauges of a model version; `robust_accuracy` is (attack, epsilon, accuracy)."""
        self.clean_accuracy.labels(model, version).set(clean_accuracy)
        for attack, epsilon, accuracy in robust_accuracy:
            self.robust_accuracy.labels(model, version, attack, f"{epsilon:.6g}").set(accuracy)
        if not math.isnan(minimal_epsilon_median):
            self.minimal_epsilon_median.labels(model, version).set(minimal_epsilon_median)

    def observe_explanations(self, record: ExplanationRecord) -> None:
        """Set the explanation gauges of a model version from its latest check."""
        model, version = record.model, record.version
        for check in record.methods:
            values = {
                "pointing_game": check.pointing_game,
                "relevance_mass": check.relevance_mass,
                "deletion_auc": check.deletion_auc,
                "insertion_auc": check.insertion_auc,
                "drift": float(check.verdict == DRIFT),
            }
            for name, value in values.items():
                if value is not None:
                    self.explanation[name].labels(model, version, check.method).set(value)
            for region in check.regions:
                self.explanation_region_mass.labels(model, version, check.method, region.region).set(
                    region.mass
                )
            for compared in check.similarity:
                labels = (model, version, compared.baseline_version, check.method)
                self.explanation_similarity.labels(*labels).set(compared.spearman)
                self.explanation_ssim.labels(*labels).set(compared.ssim)
                self.explanation_top_k_overlap.labels(*labels).set(compared.top_k_overlap)
        for agreement in record.agreements:
            self.explanation_prediction_agreement.labels(model, version, agreement.baseline_version).set(
                agreement.prediction_agreement
            )

    def observe_queue_time(self, model: str, priority: str, seconds: float) -> None:
        self.queue_seconds.labels(model, priority).observe(seconds)

    def observe_batch_rows(self, model: str, kind: str, calls: int, rows: int) -> None:
        self.batch_rows.labels(model, kind).observe(rows)
        self.batch_calls.labels(model, kind).observe(calls)

    def set_scheduler_calls(self, priority: str, running: int, waiting_units: int) -> None:
        self.scheduler_calls.labels(priority).set(running)
        self.scheduler_units.labels(priority).set(waiting_units)

    def observe_call_cost(self, model: str, label: str, estimated: float, measured: float) -> None:
        self.estimated_seconds.labels(model, label).observe(estimated)
        self.measured_seconds.labels(model, label).observe(measured)

    def count_admission_refused(self, reason: str) -> None:
        self.refused.labels(reason).inc()

    def track_cache_size(self, stats: Callable[[], CacheStats]) -> None:
        """Read the in-process cache's size at every scrape."""
        self.cache_entries.set_function(lambda: stats().entries or 0)
        self.cache_bytes.set_function(lambda: stats().bytes or 0)

    def start(self) -> int:
        """Serve /metrics when enabled; returns the bound port (0 when disabled)."""
        if not self.settings.enabled or self._http is not None:
            return self.port
        self._http, self._thread = start_http_server(self.settings.port, self.settings.address, self.registry)
        self.port = self._http.server_port
        log.info("metrics on http://%s:%d/metrics", self.settings.address, self.port)
        return self.port

    def stop(self) -> None:
        if self._http is None:
            return
        self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http = self._thread = None
