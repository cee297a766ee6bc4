"""Model work of different kinds at once on one shared model object: a robustness evaluation (PGD input
gradients) beside feature and class visualisation jobs (hooked forwards, optimisation loops), all through
one server's compute scheduler, while other threads run the core in-process on the same model and the
feature-visualisation benchmark runs its Lucent reference beside it (bench/feature_vis.py does all of this
in one process). Every job must succeed: one call's hooks, graphs or torch thread state must never reach
another's, and a reference library's hooks (which act on every thread) must stay off the served module.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable
from types import ModuleType

import pytest
import torch
from glassbox.generative.feature_visualisation import FeatureVisualisation, visualise
from glassbox.generative.objectives import Channel
from glassbox.generative.optimise import StepSpan, TokenReporter
from glassbox_client._generated.glassbox.v1 import datasets_pb2, job_service_pb2, job_service_pb2_grpc
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gen
from glassbox_client._generated.glassbox.v1 import robustness_pb2 as rpb
from support.model_repository import copy_shipped_model
from support.paths import ROOT
from support.servers import RunningServer

FINISHED = (
    job_service_pb2.JOB_STATE_SUCCEEDED,
    job_service_pb2.JOB_STATE_FAILED,
    job_service_pb2.JOB_STATE_CANCELLED,
)


@pytest.fixture(scope="module")
def running(start_server, tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    root = tmp_path_factory.mktemp("models")
    copy_shipped_model(root, "shapes")
    return start_server(model_repository=root, jobs={"worker_threads": 4})


def _bench_feature_vis() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_feature_vis", ROOT / "bench" / "feature_vis.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _requests() -> list[job_service_pb2.SubmitJobRequest]:
    robustness = rpb.RobustnessEvaluationSpec(
        model="shapes",
        seed=1,
        images=datasets_pb2.ImageSet(named="shapes-val", limit=24),
        attacks=[rpb.Attack(method=rpb.ATTACK_METHOD_PGD_LINF, epsilons=[1 / 255, 4 / 255], steps=6)],
    )
    requests = [job_service_pb2.SubmitJobRequest(robustness_evaluation=robustness)]
    for layer, channel in (("features.10", 4), ("features.14", 16)):
        objective = gen.Objective(channel=gen.ChannelObjective(layer=layer, channel=channel))
        spec = gen.FeatureVisualisationSpec(
            model="shapes", seed=channel, objective=objective, height=64, width=64, steps=12
        )
        requests.append(job_service_pb2.SubmitJobRequest(feature_visualisation=spec))
    for index in (1, 4):
        spec = gen.ClassVisualisationSpec(
            model="shapes", seed=index, target=gen.ClassRef(index=index), steps=12
        )
        requests.append(job_service_pb2.SubmitJobRequest(class_visualisation=spec))
    return requests


def _wait(stub: job_service_pb2_grpc.JobServiceStub, job_id: str, timeout: float) -> job_service_pb2.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id), timeout=10).job
        if job.state in FINISHED:
            return job
        time.sleep(0.1)
    raise TimeoutError(job_id)


def _repeat(work: Callable[[], object], stop: threading.Event, outcomes: list[object]) -> threading.Thread:
    """A thread running `work` until `stop` (at least once), recording each result or exception."""

    def loop() -> None:
        while True:
            try:
                outcomes.append(work())
            except Exception as exc:  # reported by the test, after the jobs
                outcomes.append(exc)
            if stop.is_set():
                return

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_robustness_and_visualisation_jobs_run_beside_in_process_work(running: RunningServer) -> None:
    stub = job_service_pb2_grpc.JobServiceStub(running.channel)
    model = running.server.context.repository.get("shapes")
    spec = FeatureVisualisation(
        model=model,
        objective=Channel("features.10", 4).bind(model, "objective"),
        height=64,
        width=64,
        steps=4,
    )
    reference = _bench_feature_vis().Reference(model.module)
    stop = threading.Event()
    core: list[object] = []
    lucent: list[object] = []
    threads = [
        _repeat(
            lambda: visualise(
                spec, generator=torch.Generator().manual_seed(0), progress=StepSpan(TokenReporter(), 4)
            ),
            stop,
            core,
        ),
        _repeat(lambda: reference.render("features.10", 4, 64, 4), stop, lucent),
    ]
    try:
        ids = [stub.SubmitJob(request, timeout=10).job.id for request in _requests()]
        jobs = [_wait(stub, job_id, timeout=60) for job_id in ids]
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    for job in jobs:
        assert job.state == job_service_pb2.JOB_STATE_SUCCEEDED, f"{job.kind}: {job.error.message}"
    for outcomes in (core, lucent):
        assert outcomes and not [o for o in outcomes if isinstance(o, Exception)], outcomes
    served = list(model.module.modules())
    assert not [m for m in served if m._forward_hooks or m._forward_pre_hooks], (
        "hooks left on the served model"
    )
