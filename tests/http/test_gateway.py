"""The HTTP/JSON gateway: gRPC-JSON transcoding over the same servicers, interceptors and limits.

Every test talks HTTP to a real server on an ephemeral loopback port (urllib, as any HTTP client would)
and, where it matters, compares with the same call over gRPC.
"""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc, tensor_pb2
from PIL import Image
from support.paths import ROOT
from support.servers import RunningServer

STAR = ROOT / "docs" / "images" / "star.png"
TOKEN = "http-token-0123456789abcdef"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    base: str, method: str, path: str, body: Any = None, raw: bytes | None = None, **headers: str
) -> Reply:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    http = urllib.request.Request(f"{base}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(http, timeout=120) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


def encoded(path: Path = STAR) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def png(width: int, height: int) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def gateway(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server(http={"enabled": True, "address": "127.0.0.1:0"})


@pytest.fixture(scope="module")
def base(gateway: RunningServer) -> str:
    return f"http://127.0.0.1:{gateway.server.http_port}"


def test_the_gateway_is_off_unless_enabled(server: RunningServer) -> None:
    assert server.server.gateway is None and server.server.http_port == 0


def test_attribute_over_http_returns_the_map_the_grpc_call_returns(gateway: RunningServer, base: str) -> None:
    body = {
        "images": [{"encoded": encoded()}],
        "targets": {"topK": 1},
        "saliency": {},
        "output": {"map": True, "overlayPng": True},
        "bypassCache": True,
    }
    reply = request(base, "POST", "/v1/models/shapes:attribute", body, **{"Content-Type": "application/json"})
    assert reply.status == 200, reply.body
    attribution = reply.json()["images"][0]["attributions"][0]
    assert attribution["target"]["label"] == "star"
    overlay = Image.open(io.BytesIO(base64.b64decode(attribution["overlayPng"])))
    assert overlay.size == (64, 64)
    over_http = np.frombuffer(base64.b64decode(attribution["map"]["data"]), dtype=np.float32)

    stub = attribution_service_pb2_grpc.AttributionServiceStub(gateway.channel)
    direct = stub.Attribute(
        pb.AttributeRequest(
            model="shapes",
            images=[tensor_pb2.Image(encoded=STAR.read_bytes())],
            targets=pb.TargetSpec(top_k=1),
            saliency=pb.SaliencyParams(),
            output=pb.OutputOptions(map=True),
            bypass_cache=True,
        ),
        timeout=60,
    )
    over_grpc = np.frombuffer(direct.images[0].attributions[0].map.data, dtype=np.float32)
    np.testing.assert_array_equal(over_http, over_grpc)


def test_get_rules_take_path_and_query_parameters(base: str) -> None:
    listed = request(base, "GET", "/v1/models").json()
    assert {m["name"] for m in listed["models"]} >= {"shapes", "shapes-onnx"}
    model = request(base, "GET", "/v1/models/shapes?version=1").json()
    assert model["model"]["labels"][4] == "star" if "model" in model else model
    encoded_slash = request(base, "GET", "/v1/models/a%2Fb")  # one segment: the name is "a/b"
    assert encoded_slash.status == 404 and "'a/b'" in encoded_slash.json()["message"]
    missing = request(base, "GET", "/v1/models/shapes?version=99")
    assert missing.status == 404 and missing.json()["code"] == 5
    assert missing.json()["message"].startswith("version")


def test_calls_pass_the_grpc_interceptors(gateway: RunningServer, base: str) -> None:
    """The HTTP call is a gRPC call to the same server: the metrics interceptor counts it."""
    registry = gateway.server.metrics.registry

    def handled() -> float:
        return sum(
            sample.value
            for metric in registry.collect()
            for sample in metric.samples
            if sample.name == "grpc_server_handled_total"
            and sample.labels.get("grpc_method") == "ListModels"
            and sample.labels.get("grpc_code") == "OK"
        )

    before = handled()
    assert request(base, "GET", "/v1/models").status == 200
    deadline = time.monotonic() + 5
    while handled() < before + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert handled() == before + 1


BAD_BODIES = [
    (b"{not json", "body", "not valid JSON"),
    (b"[1, 2]", "body", "must be a JSON object"),
    (b"\xff\xfe{}", "body", "not UTF-8"),
    (json.dumps({"images": [{"encoded": "aGk="}], "topK": "three"}).encode(), "topK", "integer"),
    (json.dumps({"images": [{"encoded": "aGk="}], "topK": 2.5}).encode(), "topK", "integer"),
    (json.dumps({"images": [{"encoded": "aGk="}], "topK": 1e30}).encode(), "topK", "out of range"),
    (json.dumps({"images": {"encoded": "x"}}).encode(), "images", "JSON array"),
    (json.dumps({"images": [{"encoded": 5}]}).encode(), "images[0].encoded", "base64 string"),
    (json.dumps({"images": [{"encoded": "!!"}]}).encode(), "images[0].encoded", "base64"),
    (
        json.dumps({"images": [{"encoded": "aGk=", "colour": 1}]}).encode(),
        "images[0].colour",
        "unknown field",
    ),
    (json.dumps({"model": "shapes", "imagez": []}).encode(), "imagez", "unknown field"),
    (json.dumps({"model": "other"}).encode(), "model", "the path says"),
    (json.dumps({"priority": "URGENT"}).encode(), "priority", "is not one of"),
    (json.dumps({"images": [{"encoded": "aGk=", "pixels": {}}]}).encode(), "images[0].pixels", "only one"),
]


@pytest.mark.parametrize(("raw", "field", "words"), BAD_BODIES)
def test_bad_bodies_are_400_naming_the_field(base: str, raw: bytes, field: str, words: str) -> None:
    reply = request(base, "POST", "/v1/models/shapes:predict", raw=raw)
    assert reply.status == 400, reply.body
    status = reply.json()
    assert status["code"] == 3 and status["message"].startswith(f"{field}:") and words in status["message"]
    (violation,) = status["details"]
    assert violation["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert violation["fieldViolations"][0]["field"] == field


@pytest.mark.parametrize(
    ("method", "path", "status", "field"),
    [
        ("GET", "/v1/jobs?states=NOPE", 400, "states"),
        ("GET", "/v1/jobs?pageSize=ten", 400, "pageSize"),
        ("GET", "/v1/jobs?colour=red", 400, "colour"),
        ("GET", "/v1/models/shapes?version=1&version=2", 400, "version"),
        ("POST", "/v1/models/shapes:predict?topK=1", 400, "query"),
        ("GET", "/v1/models/shapes:predict", 405, None),
        ("GET", "/v1/no-such-thing", 404, None),
        ("GET", "/v1/jobs/abc", 400, "job_id"),
    ],
)
def test_bad_paths_and_query_parameters(
    base: str, method: str, path: str, status: int, field: str | None
) -> None:
    reply = request(base, method, path)
    assert reply.status == status, reply.body
    if field is not None:
        assert reply.json()["message"].startswith(f"{field}:")


def test_a_body_over_the_limit_is_413_and_the_server_keeps_serving(
    start_server: Callable[..., RunningServer],
) -> None:
    small = start_server(http={"enabled": True, "address": "127.0.0.1:0", "max_body_bytes": 4096})
    small_base = f"http://127.0.0.1:{small.server.http_port}"
    body = {"images": [{"encoded": base64.b64encode(png(64, 64)).decode()}]}
    reply = request(small_base, "POST", "/v1/models/shapes:predict", body)
    assert reply.status == 413
    assert reply.json()["code"] == 8 and "max_body_bytes" in reply.json()["message"]
    assert request(small_base, "GET", "/v1/models").status == 200


def test_grpc_errors_keep_their_code_message_and_details(base: str) -> None:
    """Over the standard mapping, with the rich status's details (here RetryInfo) and Retry-After."""
    not_found = request(base, "POST", "/v1/models/nope:predict", {"images": [{"encoded": encoded()}]})
    assert not_found.status == 404 and not_found.json()["message"].startswith("model:")
    undecodable = request(base, "POST", "/v1/models/shapes:predict", {"images": [{"encoded": "aGVsbG8="}]})
    assert undecodable.status == 400 and undecodable.json()["message"].startswith("images[0].encoded")
    occlusion = {"images": [{"encoded": base64.b64encode(png(64, 64)).decode()}], "occlusion": {"window": 2}}
    occlusion["targets"] = {"classIndices": [0]}
    assert (
        request(
            base,
            "POST",
            "/v1/models/shapes:attribute",
            {**occlusion, "occlusion": {"window": 2, "stride": 2}},
        ).status
        == 200
    )
    occlusion["occlusion"]["stride"] = 1
    refused = request(base, "POST", "/v1/models/shapes:attribute", occlusion, **{"grpc-timeout": "200m"})
    assert refused.status == 429, refused.body
    status = refused.json()
    assert status["code"] == 8 and "deadline" in status["message"]
    (retry,) = [d for d in status["details"] if d["@type"] == "type.googleapis.com/google.rpc.RetryInfo"]
    assert retry["retryDelay"].endswith("s") and int(refused.headers["Retry-After"]) >= 0
    bad_timeout = request(base, "GET", "/v1/models", **{"grpc-timeout": "soon"})
    assert bad_timeout.status == 400 and bad_timeout.json()["message"].startswith("grpc-timeout")


def _submit_class_visualisation(base: str, steps: int = 3) -> str:
    spec = {"model": "shapes", "target": {"label": "star"}, "steps": steps, "height": 32, "width": 32}
    reply = request(base, "POST", "/v1/jobs", {"classVisualisation": spec})
    assert reply.status == 200, reply.body
    return reply.json()["job"]["id"]


def _sse_events(body: bytes) -> Iterator[tuple[str, Any]]:
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        yield fields["event"], json.loads(fields["data"])


def test_watch_job_streams_server_sent_events_until_the_result(base: str) -> None:
    job_id = _submit_class_visualisation(base)
    reply = request(base, "GET", f"/v1/jobs/{job_id}:watch?previewEverySteps=1", Accept="text/event-stream")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/event-stream")
    events = list(_sse_events(reply.body))
    assert {kind for kind, _ in events} == {"message"}
    final = events[-1][1]["job"]
    assert final["state"] == "JOB_STATE_SUCCEEDED"
    png_bytes = base64.b64decode(final["classVisualisation"]["image"]["png"])
    assert Image.open(io.BytesIO(png_bytes)).size == (32, 32)

    lines = request(base, "GET", f"/v1/jobs/{job_id}:watch", Accept="application/x-ndjson")
    assert lines.headers["Content-Type"].startswith("application/x-ndjson")
    *_, last = (json.loads(line) for line in lines.body.splitlines())
    assert last["result"]["job"]["state"] == "JOB_STATE_SUCCEEDED"

    unknown = request(base, "GET", f"/v1/jobs/{'0' * 32}:watch")
    assert unknown.status == 404 and unknown.json()["code"] == 5


def test_bearer_tokens_are_checked_by_the_same_interceptor(
    start_server: Callable[..., RunningServer],
) -> None:
    guarded = start_server(http={"enabled": True, "address": "127.0.0.1:0"}, security={"tokens": [TOKEN]})
    guarded_base = f"http://127.0.0.1:{guarded.server.http_port}"
    refused = request(guarded_base, "GET", "/v1/models")
    assert refused.status == 401 and refused.json()["code"] == 16
    wrong = request(guarded_base, "GET", "/v1/models", Authorization="Bearer wrong-token-0123456789abcdef")
    assert wrong.status == 401
    assert request(guarded_base, "GET", "/v1/models", Authorization=f"Bearer {TOKEN}").status == 200
    assert request(guarded_base, "GET", "/").status == 200, "the page itself holds no data"


def test_the_openapi_document_is_served_and_covers_every_rule(base: str) -> None:
    document = request(base, "GET", "/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    operations = {op["operationId"] for path in document["paths"].values() for op in path.values()}
    assert {"AttributionService_Attribute", "JobService_WatchJob", "ModelService_ListModels"} <= operations
    assert len(operations) == len(annotated_rpcs())
    schema = document["components"]["schemas"]["glassbox.v1.AttributeRequest"]
    assert schema["properties"]["images"]["type"] == "array"
    refs = json.dumps(document)
    for name in document["components"]["schemas"]:
        assert name in refs
    for ref in {part.split('"')[0] for part in refs.split('"$ref": "#/components/schemas/')[1:]}:
        assert ref in document["components"]["schemas"], ref


def test_the_page_and_samples_are_served(base: str) -> None:
    page = request(base, "GET", "/")
    assert page.status == 200 and b"<html" in page.body.lower()
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    samples = request(base, "GET", "/samples.json").json()
    assert {s["name"] for s in samples} == {"circle", "square", "triangle", "cross", "star", "ring"}
    image = request(base, "GET", samples[0]["url"])
    assert image.headers["Content-Type"] == "image/png" and Image.open(io.BytesIO(image.body)).size == (
        128,
        128,
    )


def annotated_rpcs() -> set[str]:
    """Every RPC of every glassbox.v1 service, as `Service_Method` (each has a google.api.http rule)."""
    import importlib
    import pkgutil

    from glassbox_client._generated.glassbox import v1

    names = set()
    for module_info in pkgutil.iter_modules(v1.__path__):
        if module_info.name.endswith("_pb2"):
            module = importlib.import_module(f"{v1.__name__}.{module_info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                names |= {f"{service.name}_{method.name}" for method in service.methods}
    return names
