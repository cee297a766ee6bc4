"""The robustness_evaluation job and RobustnessService over gRPC: a full report, bad input refused before
anything is queued (naming the field, the server keeps serving), monitoring into the history and the
gauges, and the Redis history adapter."""

from __future__ import annotations

import json
import time
import urllib.request

import grpc
import pytest
from glassbox.robustness.history import HistoryRecord
from glassbox.robustness.redis_history import RedisHistory
from glassbox.robustness.report import AttackAccuracy
from glassbox_client._generated.glassbox.v1 import (
    datasets_pb2,
    generative_pb2,
    job_service_pb2,
    job_service_pb2_grpc,
    robustness_pb2_grpc,
)
from glassbox_client._generated.glassbox.v1 import robustness_pb2 as pb
from support.model_repository import copy_shipped_model, monitoring_section
from support.paths import MODELS
from support.redis_server import RedisServer
from support.servers import RunningServer

MONITORING = monitoring_section(images=8, attacks=("pgd_linf",), epsilons=(1 / 255,))


@pytest.fixture(scope="module")
def running(start_server, tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    """The shipped models, with a [monitoring] section added to `shapes`."""
    root = tmp_path_factory.mktemp("models")
    copy_shipped_model(root, "shapes", extra_toml=MONITORING)
    copy_shipped_model(root, "shapes-onnx")
    return start_server(model_repository=root, robustness={"check_interval_seconds": 0.3})


def _spec(**fields: object) -> pb.RobustnessEvaluationSpec:
    base: dict[str, object] = {
        "model": "shapes",
        "seed": 3,
        "images": datasets_pb2.ImageSet(named="shapes-val", limit=12),
        "attacks": [
            pb.Attack(method=pb.ATTACK_METHOD_PGD_LINF, epsilons=[1 / 255, 2 / 255], steps=5),
            pb.Attack(method=pb.ATTACK_METHOD_SQUARE_LINF, epsilons=[2 / 255], queries=20),
        ],
        "corruptions": [pb.CorruptionCheck(corruption=pb.CORRUPTION_GAUSSIAN_NOISE, severities=[1, 5])],
        "minimal_epsilon": pb.MinimalEpsilonSearch(iterations=3),
    }
    base.update(fields)
    return pb.RobustnessEvaluationSpec(**base)  # type: ignore[arg-type]


def _wait(stub: job_service_pb2_grpc.JobServiceStub, job_id: str, timeout: float = 60) -> job_service_pb2.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stub.GetJob(job_service_pb2.GetJobRequest(job_id=job_id), timeout=10).job
        if job.state in (job_service_pb2.JOB_STATE_SUCCEEDED, job_service_pb2.JOB_STATE_FAILED):
            return job
        time.sleep(0.2)
    raise TimeoutError(job_id)


def test_evaluation_job_reports_everything(running: RunningServer) -> None:
    stub = job_service_pb2_grpc.JobServiceStub(running.channel)
    job = stub.SubmitJob(job_service_pb2.SubmitJobRequest(robustness_evaluation=_spec()), timeout=30).job
    job = _wait(stub, job.id)
    assert job.state == job_service_pb2.JOB_STATE_SUCCEEDED, job.error.message
    result = job.robustness_evaluation
    assert result.images == 12 and 0.9 <= result.clean_accuracy <= 1.0
    assert [(a.attack, round(a.epsilon * 255)) for a in result.attacks] == [
        ("pgd_linf", 1),
        ("pgd_linf", 2),
        ("square_linf", 2),
    ]
    pgd_1, pgd_2, square = result.attacks
    assert pgd_2.robust_accuracy <= pgd_1.robust_accuracy <= result.clean_accuracy
    assert pgd_2.mean_linf <= 2 / 255 + 1e-6 and pgd_2.threat_model == "Linf"
    (worst,) = result.worst_case
    assert worst.robust_accuracy <= min(pgd_2.robust_accuracy, square.robust_accuracy)
    assert [c.severity for c in result.corruptions] == [1, 5]
    assert len(result.minimal_epsilon.images) == 12 and result.minimal_epsilon.max_epsilon == pytest.approx(
        2 / 255
    )
    assert result.passes.backward > 0 and result.passes.forward > result.passes.backward
    report = json.loads(result.json)
    assert report["clean_acc"] == pytest.approx(result.clean_accuracy) and report["n_ex"] == 12
    assert {a["threat_model"] for a in report["attacks"]} == {"Linf"}
    assert result.plot_png.startswith(b"\x89PNG") and all(
        e.png.startswith(b"\x89PNG") for e in result.examples
    )
    assert all(e.adversarial_prediction.index != e.label for e in result.examples)


BAD = [
    (
        "empty set",
        {"images": datasets_pb2.ImageSet(inline=datasets_pb2.InlineImageSet())},
        "INVALID_ARGUMENT",
        "images.inline.images",
    ),
    ("unknown set", {"images": datasets_pb2.ImageSet(named="nope")}, "NOT_FOUND", "images.named"),
    ("no images", {"images": None}, "INVALID_ARGUMENT", "images"),
    (
        "eps > 1",
        {"attacks": [pb.Attack(method=pb.ATTACK_METHOD_PGD_LINF, epsilons=[1.5])]},
        "INVALID_ARGUMENT",
        "attacks[0].epsilons[0]",
    ),
    (
        "eps < 0",
        {"attacks": [pb.Attack(method=pb.ATTACK_METHOD_FGSM, epsilons=[-0.1])]},
        "INVALID_ARGUMENT",
        "attacks[0].epsilons[0]",
    ),
    (
        "unknown attack",
        {"attacks": [pb.Attack(method=99, epsilons=[0.01])]},
        "INVALID_ARGUMENT",
        "attacks[0].method",
    ),
    ("no attack", {"attacks": [pb.Attack(epsilons=[0.01])]}, "INVALID_ARGUMENT", "attacks[0].method"),
    (
        "white-box on ONNX",
        {"model": "shapes-onnx", "attacks": [pb.Attack(method=pb.ATTACK_METHOD_PGD_LINF, epsilons=[0.01])]},
        "FAILED_PRECONDITION",
        "attacks[0].method",
    ),
    (
        "target class",
        {
            "attacks": [
                pb.Attack(
                    method=pb.ATTACK_METHOD_PGD_LINF,
                    epsilons=[0.01],
                    goal=pb.ATTACK_GOAL_TARGET_CLASS,
                    target_class=generative_pb2.ClassRef(index=6),
                )
            ]
        },
        "INVALID_ARGUMENT",
        "attacks[0].target_class.index",
    ),
    (
        "severity",
        {"corruptions": [pb.CorruptionCheck(corruption=pb.CORRUPTION_JPEG, severities=[6])]},
        "INVALID_ARGUMENT",
        "corruptions[0].severities[0]",
    ),
    (
        "search index",
        {"minimal_epsilon": pb.MinimalEpsilonSearch(attack_index=5)},
        "INVALID_ARGUMENT",
        "minimal_epsilon.attack_index",
    ),
]


def _inline(labels: list[int], count: int = 2) -> datasets_pb2.ImageSet:
    from glassbox_client._generated.glassbox.v1 import tensor_pb2

    png = (MODELS.parent / "docs" / "images").glob("*.png")
    data = next(png).read_bytes()
    return datasets_pb2.ImageSet(
        inline=datasets_pb2.InlineImageSet(images=[tensor_pb2.Image(encoded=data)] * count, labels=labels)
    )


BAD += [
    ("labels count", {"images": _inline([1])}, "INVALID_ARGUMENT", "images.inline.labels"),
    ("label range", {"images": _inline([1, 6])}, "INVALID_ARGUMENT", "images.inline.labels[1]"),
    ("unlabelled", {"images": _inline([])}, "INVALID_ARGUMENT", "images"),
]


@pytest.mark.parametrize(("case", "fields", "code", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_before_queueing(
    running: RunningServer, case: str, fields: dict, code: str, field: str
) -> None:
    stub = job_service_pb2_grpc.JobServiceStub(running.channel)
    before = len(
        stub.ListJobs(job_service_pb2.ListJobsRequest(kind="robustness_evaluation"), timeout=10).jobs
    )
    spec = _spec(**{k: v for k, v in fields.items() if v is not None})
    if fields.get("images", ...) is None:
        spec.ClearField("images")
    with pytest.raises(grpc.RpcError) as error:
        stub.SubmitJob(job_service_pb2.SubmitJobRequest(robustness_evaluation=spec), timeout=30)
    assert error.value.code().name == code, error.value.details()
    assert error.value.details().startswith(f"robustness_evaluation.{field}:"), error.value.details()
    after = len(stub.ListJobs(job_service_pb2.ListJobsRequest(kind="robustness_evaluation"), timeout=10).jobs)
    assert after == before


def test_monitoring_fills_history_and_gauges(running: RunningServer) -> None:
    stub = robustness_pb2_grpc.RobustnessServiceStub(running.channel)
    deadline = time.monotonic() + 60
    records: list[pb.RobustnessRecord] = []
    while time.monotonic() < deadline and not records:
        records = list(
            stub.GetRobustnessHistory(pb.GetRobustnessHistoryRequest(model="shapes"), timeout=10).records
        )
        time.sleep(0.3)
    (record,) = records
    assert (record.version, record.trigger, record.reference_set, record.images) == (
        "1",
        "new_version",
        "shapes-val",
        8,
    )
    assert record.attacks[0].attack == "pgd_linf" and record.job_id
    metrics = (
        urllib.request.urlopen(f"http://127.0.0.1:{running.server.metrics.port}/metrics").read().decode()
    )
    gauge = 'glassbox_robust_accuracy{attack="pgd_linf",epsilon="0.00392157",model="shapes",version="1"} '
    assert gauge + f"{record.attacks[0].robust_accuracy}" in metrics or gauge in metrics
    assert f'glassbox_clean_accuracy{{model="shapes",version="1"}} {record.clean_accuracy}' in metrics
    with pytest.raises(grpc.RpcError) as error:
        stub.GetRobustnessHistory(pb.GetRobustnessHistoryRequest(model="missing"), timeout=10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as error:
        stub.GetRobustnessHistory(pb.GetRobustnessHistoryRequest(model="shapes", limit=5000), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit" in error.value.details()


def test_redis_history_keeps_newest_first(redis_server: RedisServer) -> None:
    store = RedisHistory(redis_server.url, "test-history", max_records=3)
    attack = AttackAccuracy("pgd_linf", "Linf", 0.01, 0.5, 0.5, 0.01, 0.5, 8)
    for i in range(5):
        store.append(
            HistoryRecord(
                "m",
                str(i % 2 + 1),
                float(i),
                "s",
                "schedule",
                8,
                1.0,
                (attack,),
                (),
                float("inf"),
                (),
                f"job{i}",
            )
        )
    assert [r.job_id for r in store.records("m")] == ["job4", "job3", "job2"]
    assert [r.job_id for r in store.records("m", "2")] == ["job3"]
    assert store.latest("m", "1") == store.records("m")[0]
    assert store.records("m")[0].attacks == (attack,)
    store.close()
