"""The Python client's side of the contract: every submission carries a request id (so SubmitJob is
retried like the other idempotent calls), a repeated id returns the same job, and a failed job raises
JobFailedError with the job's status details typed."""

from __future__ import annotations

import json

import pytest
from glassbox_client import GlassboxClient, JobFailedError
from glassbox_client.connection import RetryPolicy
from glassbox_client.errors import InvalidArgumentError
from support.servers import RunningServer


def test_submit_job_is_retried_because_it_always_has_a_request_id() -> None:
    names = json.loads(RetryPolicy().service_config())["methodConfig"][0]["name"]
    assert {"service": "glassbox.v1.JobService", "method": "SubmitJob"} in names


def test_a_repeated_request_id_returns_the_same_job(server: RunningServer) -> None:
    spec = {"target": "star", "steps": 10_000, "height": 32, "width": 32}
    with GlassboxClient(server.address, timeout=30) as glassbox:
        first = glassbox.jobs.submit("class_visualisation", model="shapes", **spec)
        assert len(first.request_id) == 32
        again = glassbox.jobs.submit(
            "class_visualisation", model="shapes", request_id=first.request_id, **spec
        )
        assert again.id == first.id
        other = glassbox.jobs.submit("class_visualisation", model="shapes", **spec)
        assert other.id != first.id, "without an explicit id every submission is a new job"
        with pytest.raises(InvalidArgumentError) as reused:
            glassbox.jobs.submit(
                "class_visualisation", model="shapes", request_id=first.request_id, **{**spec, "steps": 5}
            )
        assert (reused.value.reason, reused.value.field) == ("REQUEST_ID_REUSED", "request_id")
        assert reused.value.metadata == {"job_id": first.id}
        for job in (first, other):
            glassbox.jobs.cancel(job.id)
        with pytest.raises(JobFailedError) as failed:
            glassbox.jobs.wait(first.id, timeout=30).raise_for_state()
    error = failed.value
    assert error.reason == "CANCELLED" and error.job.error_status is not None
    assert error.job.error_status.domain == "glassbox.v1" and error.job.error == (
        "CANCELLED",
        error.job.error_status.message,
    )
