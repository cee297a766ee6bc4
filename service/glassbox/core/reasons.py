"""The stable error reasons: every error the service answers carries one in a `google.rpc.ErrorInfo`
detail (domain `glassbox.v1`), so a caller branches on `reason`, never on the message text.

A reason never changes meaning once published; new ones may be added. docs/operations.md lists them;
`GetServerInfo` returns this table too. Each reason has one gRPC code (the `Reason.code` name), so a
client that only looks at the status code still does the right thing.
"""

from __future__ import annotations

from enum import StrEnum

ERROR_DOMAIN = "glassbox.v1"
"""`google.rpc.ErrorInfo.domain` of every reason below."""


class Reason(StrEnum):
    """Why a call failed, finer than its status code."""

    # INVALID_ARGUMENT
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    LAYER_NOT_FOUND = "LAYER_NOT_FOUND"
    MALFORMED_REQUEST = "MALFORMED_REQUEST"
    REQUEST_ID_REUSED = "REQUEST_ID_REUSED"
    RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"
    # NOT_FOUND
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    VERSION_NOT_FOUND = "VERSION_NOT_FOUND"
    DATASET_NOT_FOUND = "DATASET_NOT_FOUND"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    JOB_NOT_ON_THIS_REPLICA = "JOB_NOT_ON_THIS_REPLICA"
    NOT_FOUND = "NOT_FOUND"
    # FAILED_PRECONDITION
    METHOD_NOT_SUPPORTED = "METHOD_NOT_SUPPORTED"
    MODEL_NOT_READY = "MODEL_NOT_READY"
    DATASET_BROKEN = "DATASET_BROKEN"
    IMAGE_PRIOR_NOT_TRAINED = "IMAGE_PRIOR_NOT_TRAINED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    # RESOURCE_EXHAUSTED
    OVERLOADED = "OVERLOADED"
    JOB_QUEUE_FULL = "JOB_QUEUE_FULL"
    JOB_RAN_TOO_LONG = "JOB_RAN_TOO_LONG"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    # UNAVAILABLE
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    WORKER_LOST = "WORKER_LOST"
    WATCH_INTERRUPTED = "WATCH_INTERRUPTED"
    UNAVAILABLE = "UNAVAILABLE"
    # CANCELLED / DEADLINE_EXCEEDED
    CANCELLED = "CANCELLED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    # UNAUTHENTICATED
    UNAUTHENTICATED = "UNAUTHENTICATED"
    # INTERNAL
    INTERNAL = "INTERNAL"

    @property
    def code(self) -> str:
        """The gRPC status code name this reason is always sent with."""
        return REASONS[self][0]

    @property
    def description(self) -> str:
        return REASONS[self][1]


REASONS: dict[Reason, tuple[str, str]] = {
    Reason.INVALID_ARGUMENT: (
        "INVALID_ARGUMENT",
        "a request field has a bad value, shape, range or name; BadRequest names the field",
    ),
    Reason.LAYER_NOT_FOUND: ("INVALID_ARGUMENT", "the model has no layer of that name (GetModel lists them)"),
    Reason.MALFORMED_REQUEST: (
        "INVALID_ARGUMENT",
        "the request bytes do not parse as the RPC's request message; field `request`",
    ),
    Reason.REQUEST_ID_REUSED: (
        "INVALID_ARGUMENT",
        "SubmitJob: this caller already used request_id for a different spec; metadata job_id is that job",
    ),
    Reason.RESPONSE_TOO_LARGE: (
        "INVALID_ARGUMENT",
        "the response would exceed the message limit; BadRequest names the option that makes it large",
    ),
    Reason.MODEL_NOT_FOUND: ("NOT_FOUND", "no model of that name is served (ListModels lists them)"),
    Reason.VERSION_NOT_FOUND: ("NOT_FOUND", "the model has no such version"),
    Reason.DATASET_NOT_FOUND: (
        "NOT_FOUND",
        "the model has no named image set of that name (GetModel lists them)",
    ),
    Reason.JOB_NOT_FOUND: (
        "NOT_FOUND",
        "no job of that id is visible to the caller: unknown, past its result TTL, or another principal's",
    ),
    Reason.JOB_NOT_ON_THIS_REPLICA: (
        "NOT_FOUND",
        "the in-process job engine of another server process (another replica, or this one before a "
        "restart) took the job; only that process knows it. Use the Redis job engine behind several "
        "replicas (docs/scaling.md)",
    ),
    Reason.NOT_FOUND: ("NOT_FOUND", "a named thing does not exist"),
    Reason.METHOD_NOT_SUPPORTED: (
        "FAILED_PRECONDITION",
        "the model's backend cannot run this method (e.g. a gradient method on ONNX); GetModel lists the "
        "supported methods",
    ),
    Reason.MODEL_NOT_READY: ("FAILED_PRECONDITION", "the model version failed to load; GetModel says why"),
    Reason.DATASET_BROKEN: ("FAILED_PRECONDITION", "the named image set exists but cannot be read"),
    Reason.IMAGE_PRIOR_NOT_TRAINED: (
        "FAILED_PRECONDITION",
        "no learned image prior was trained on that named set for the model version (or it cannot be read); "
        "the message says how to train one",
    ),
    Reason.FAILED_PRECONDITION: ("FAILED_PRECONDITION", "the request is well formed but cannot be done here"),
    Reason.OVERLOADED: (
        "RESOURCE_EXHAUSTED",
        "the compute scheduler refused the call (it would miss its deadline, its priority class has too "
        "much work queued, or its memory is not free); RetryInfo says when to retry",
    ),
    Reason.JOB_QUEUE_FULL: ("RESOURCE_EXHAUSTED", "jobs.queue_capacity jobs are already waiting"),
    Reason.JOB_RAN_TOO_LONG: ("RESOURCE_EXHAUSTED", "the job ran longer than jobs.max_run_seconds"),
    Reason.RESOURCE_EXHAUSTED: ("RESOURCE_EXHAUSTED", "a server limit was hit"),
    Reason.STORE_UNAVAILABLE: ("UNAVAILABLE", "the job store or robustness history (Redis) is unreachable"),
    Reason.WORKER_LOST: ("UNAVAILABLE", "the job's worker was lost and the job had no attempts left"),
    Reason.WATCH_INTERRUPTED: (
        "UNAVAILABLE",
        "WatchJob ended before the job finished (the server is stopping or the store failed); watch again",
    ),
    Reason.UNAVAILABLE: ("UNAVAILABLE", "the target cannot serve now; retry with backoff"),
    Reason.CANCELLED: ("CANCELLED", "the caller cancelled (CancelJob for a job)"),
    Reason.DEADLINE_EXCEEDED: ("DEADLINE_EXCEEDED", "the call's deadline passed while it ran"),
    Reason.UNAUTHENTICATED: ("UNAUTHENTICATED", "no bearer token, or one the server does not accept"),
    Reason.INTERNAL: (
        "INTERNAL",
        "an unexpected server error; metadata reference is the id of the server log entry",
    ),
}
