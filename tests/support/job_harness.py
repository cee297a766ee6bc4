"""Helpers shared by the job tests: a model repository, `glassbox worker` subprocesses, and a client
that submits, waits for and watches jobs through the real JobService."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from glassbox.jobs.redis_engine import connect, job_queue
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gen
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import job_service_pb2_grpc
from rq import Worker

from support.model_repository import write_model_version

MODEL = "shapes-random"
ONNX_MODEL = "shapes-random-onnx"
OTHER_MODEL = "shapes-random-b"
LONG_STEPS = 10_000
"""Long enough to outlast any test (a step takes milliseconds); such jobs are always cancelled."""

FINISHED = (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED)


def write_repository(root: Path) -> Path:
    """Three small versions of the demo CNN with random weights: two torch models and an ONNX one."""
    write_model_version(root, MODEL, "1", seed=1, logit_scale=10.0)
    write_model_version(root, OTHER_MODEL, "1", seed=2, logit_scale=10.0)
    write_model_version(root, ONNX_MODEL, "1", seed=1, fmt="onnx")
    return root


def class_visualisation(
    steps: int, *, seed: int = 0, model: str = MODEL, label: str = "star"
) -> pb.SubmitJobRequest:
    """A class-visualisation job on the random demo CNN at 32×32 (a step takes a few milliseconds)."""
    spec = gen.ClassVisualisationSpec(model=model, seed=seed, target=gen.ClassRef(label=label), steps=steps)
    spec.height = spec.width = 32
    return pb.SubmitJobRequest(class_visualisation=spec)


class WorkerProcess:
    """A real `glassbox worker` subprocess on a namespace; its log goes to a file for diagnosis."""

    def __init__(
        self, redis_url: str, namespace: str, repository: Path, log_path: Path, **jobs: float
    ) -> None:
        env = dict(os.environ, GLASSBOX_TORCH_THREADS="1")
        env.update({f"GLASSBOX_JOBS__{key.upper()}": str(value) for key, value in jobs.items()})
        command = [str(Path(sys.executable).parent / "glassbox"), "worker", "--redis-url", redis_url]
        command += ["--namespace", namespace, "--model-repository", str(repository), "--device", "cpu"]
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self._redis_url, self._namespace = redis_url, namespace

    def wait_ready(self, timeout: float = 60.0) -> WorkerProcess:
        """Block until the worker has registered with RQ (its models are loaded by then)."""
        connection = connect(self._redis_url)
        queue = job_queue(connection, self._namespace)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"glassbox worker exited with {self.process.returncode}:\n{self.log()}")
            if any(worker.name.endswith(f"-{self.process.pid}") for worker in Worker.all(queue=queue)):
                connection.close()
                return self
            time.sleep(0.1)
        raise TimeoutError(f"glassbox worker did not register within {timeout} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye — as when a machine dies."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]


class JobClient:
    """JobService calls with the waiting the tests need."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.stub = job_service_pb2_grpc.JobServiceStub(channel)

    def submit(self, request: pb.SubmitJobRequest) -> pb.Job:
        return self.stub.SubmitJob(request, timeout=30).job

    def get(self, job_id: str) -> pb.Job:
        return self.stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=30).job

    def cancel(self, job_id: str) -> pb.Job:
        return self.stub.CancelJob(pb.CancelJobRequest(job_id=job_id), timeout=30).job

    def list_all(self, page_token: str = "", **filters: object) -> list[pb.Job]:
        """Every job matching the filters, following the pages from `page_token`."""
        jobs: list[pb.Job] = []
        token = page_token
        while True:
            page = self.stub.ListJobs(pb.ListJobsRequest(page_token=token, **filters), timeout=30)
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not token:
                return jobs

    def wait_for(self, job_id: str, condition: Callable[[pb.Job], bool], timeout: float = 60.0) -> pb.Job:
        """Poll GetJob until `condition` holds."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if condition(job):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not get there within {timeout} s; it is now {job}")
            time.sleep(0.05)

    def wait_running(self, job_id: str, timeout: float = 60.0) -> pb.Job:
        """Until the job runs and has reported at least one step."""
        return self.wait_for(
            job_id, lambda job: job.state == pb.JOB_STATE_RUNNING and job.progress.step > 0, timeout
        )

    def wait_finished(self, job_id: str, timeout: float = 60.0) -> pb.Job:
        return self.wait_for(job_id, lambda job: job.state in FINISHED, timeout)
