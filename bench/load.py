"""Load benchmark of the serving core: many callers at once over gRPC, against floors from the same run.

    python bench/load.py [--only mix,batching,fairness,streams,memory] [--seconds 60] [--clients 48]

Every scenario starts its own GlassboxServer in a child process (spawned, so the server has its own
interpreter and GIL, as in production) on 127.0.0.1:0 over a temporary model repository, with the result
cache off (`cache.enabled = false`; attribution calls also set `bypass_cache`) so every call computes,
metrics and robustness monitoring off. The benchmark talks to it only over gRPC (grpc.aio clients in this
process), sends traffic only to 127.0.0.1, and every phase is bounded in time (and in calls, by
MAX_CALLS_PER_PHASE). Any gRPC error is counted by its status code; none stops the run. The server and the
benchmark share the machine's cores, so floors are measured while the server is idle, and every target
is a ratio to something measured in the same run.

Scenarios (`--only` picks some; the default is all five, ~5 min on 2 cores):

mix       The demo model `shapes` (64×64; the trained one from --models, else a random-weights stand-in).
          First one caller measures the idle p99 latency of Predict, saliency and Grad-CAM (~50
          sequential calls each). Then --clients concurrent callers (asyncio tasks) loop for --seconds
          over Predict and Attribute saliency / grad_cam / occlusion (window 8, stride 2: 841 forwards) /
          lime (1024 samples), each call with a 30 s deadline; a caller that is refused (RESOURCE_EXHAUSTED,
          UNAVAILABLE, ABORTED) waits 50-150 ms before its next call, as a client with back-off would.
          No new call starts after --seconds; the ones in flight finish (their deadline bounds that).
          Per call kind: calls, OK, OK/s (over the whole load phase), p50/p99 latency of the OK calls,
          refusals by code and how long a refusal took (p50/p99), DEADLINE_EXCEEDED.
          Targets: Predict, saliency, Grad-CAM ≥ 99% OK, and their p99 ≤ 3 × their idle p99; occlusion
          and LIME, when refused, refused within 50 ms (p99 of their refusal times; none refused passes);
          no DEADLINE_EXCEEDED at all (a call that times out did work for nobody: every one is a miss).
batching  A random-weights torchvision resnet18 at 224×224 (1000 classes). (a) the floor: the bare
          forward + backward (input gradient of one class score per row) of a batch of 8 images in this
          process, best of the eager network and the network the server runs (BatchNorm folded), while the
          server is idle; (b) one caller sending saliency on one image back to back; (c) 8 concurrent
          callers each sending saliency on one image, for min(20, --seconds) s. Images/s of each.
          Targets: (c)/(a) ≥ 0.9 (concurrent single-image calls are batched as well as a hand-made batch),
          (c)/(b) ≥ 1.0 (concurrency never costs throughput).
fairness  resnet18: the median latency of 20 sequential saliency calls idle, then the same while two
          callers loop occlusion (window 16, stride 8: 729 forwards; 60 s deadline). Target: ratio ≤ 1.5.
streams   `shapes`: ListModels p99 over 200 sequential calls, idle. Then a long feature-visualisation job
          is submitted (10000 steps) and ListModels p99 is measured again while it runs (the baseline of
          the target); then 200 grpc.health.v1.Health/Watch and 200 JobService/WatchJob streams on that
          job are opened (over 4 connections), and, 1 s after they are open, ListModels p99 is measured
          a third time. From the first stream on, a prober calls Health.Check every 0.1 s (1 s
          deadline). Targets: every stream opens (its first message arrives, within 15 s), ListModels p99
          with streams ≤ 1.2 × without (job running in both), and Health.Check answers SERVING every
          time. The streams and the job are cancelled at the end.
memory    The server's resident memory (VmRSS, and VmHWM, from /proc/<pid>/status every 0.2 s) around the
          mix scenario (which runs when either is asked for): the warmed-up level just before the load
          (after the idle-latency calls, which run every call kind), the peak during it, and the level
          10 s after it ends. Target: after ≤ 1.1 × warmed-up.

Reading the output: each scenario prints its measurements and ratios as it goes; the run ends with one
table of every target, the value measured and PASS or MISS (a value that could not be measured, e.g. no
call succeeded, is a MISS). Latencies are client-side wall times, request encoding included. Record
results, with the machine and the date, in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import io
import logging
import multiprocessing as mp
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import torch
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as apb
from glassbox_client._generated.glassbox.v1 import (
    attribution_service_pb2_grpc,
    generative_pb2,
    job_service_pb2,
    job_service_pb2_grpc,
    model_service_pb2,
    model_service_pb2_grpc,
    tensor_pb2,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("mix", "batching", "fairness", "streams", "memory")
SHAPES_CLASSES = ["circle", "square", "triangle", "cross", "star", "ring"]
SHAPES_CAM = "features.14"
RESNET_CAM = "layer4"
TARGET = 3
MIX_KINDS = ("predict", "saliency", "grad_cam", "occlusion", "lime")
LATENCY_KINDS = ("predict", "saliency", "grad_cam")  # the cheap calls whose latency must hold under load
EXPENSIVE_KINDS = ("occlusion", "lime")  # the calls the server may refuse, but then at once
MIX_DEADLINE_S = 30.0
REFUSAL_CODES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "ABORTED"})
REFUSAL_BACKOFF_S = (0.05, 0.15)
MAX_CALLS_PER_PHASE = 200_000
CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),  # each channel its own connection
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


# --------------------------------------------------------------------------------------------- results


@dataclass
class Check:
    """One target of the summary table."""

    scenario: str
    target: str
    measured: str
    passed: bool


@dataclass
class Tally:
    """Outcomes of one call kind: latencies of the OK calls, latencies of the others by status code."""

    ok: list[float] = field(default_factory=list)
    errors: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    @property
    def calls(self) -> int:
        return len(self.ok) + sum(len(v) for v in self.errors.values())

    def add(self, code: str, seconds: float) -> None:
        if code == "OK":
            self.ok.append(seconds)
        else:
            self.errors[code].append(seconds)

    def refusals(self) -> list[float]:
        return [s for code, times in self.errors.items() if code in REFUSAL_CODES for s in times]

    def codes(self) -> str:
        return ", ".join(f"{code} {len(t)}" for code, t in sorted(self.errors.items())) or "-"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1e3:.1f}"  # NaN → "-"


def ratio_check(scenario: str, target: str, value: float, limit: float, *, at_most: bool) -> Check:
    measured = "n/a" if value != value else f"{value:.2f}"
    passed = value == value and (value <= limit if at_most else value >= limit)
    return Check(scenario, target, measured, passed)


# ---------------------------------------------------------------------------------------- the server


def _serve_child(repository: str, conn: Connection, stop: Any) -> None:
    """Child process: a GlassboxServer over `repository` until `stop` is set. Sends ("port", n) once
    serving, or ("error", traceback) when it cannot start."""
    logging.basicConfig(level=logging.WARNING, format="server %(levelname)s %(name)s: %(message)s")
    try:
        from glassbox.config import load_settings
        from glassbox.server.app import GlassboxServer

        settings = load_settings(
            address="127.0.0.1:0",
            model_repository=Path(repository),
            cache={"enabled": False},
            metrics={"enabled": False},
            robustness={"monitoring": False},
            log_level="WARNING",
        )
        if inspect.iscoroutinefunction(GlassboxServer.start):  # a grpc.aio server
            asyncio.run(_serve_async(GlassboxServer, settings, conn, stop))
            return
        server = GlassboxServer(settings)
        port = server.start()
        conn.send(("port", int(port)))
        stop.wait()
        server.stop(grace=0)
    except BaseException:
        with contextlib.suppress(Exception):  # reported to the parent, which goes on without it
            conn.send(("error", traceback.format_exc()))


async def _serve_async(server_cls: Any, settings: Any, conn: Connection, stop: Any) -> None:
    server = server_cls(settings)
    port = await server.start()
    conn.send(("port", int(port)))
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    stopped = server.stop(grace=0)
    if inspect.isawaitable(stopped):
        await stopped


def machine_cpu() -> tuple[int, int]:
    """(all, idle + iowait) CPU time of the whole machine so far, in clock ticks (/proc/stat)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(values), values[3] + values[4]
    except (OSError, ValueError, IndexError):
        return 0, 0


def machine_busy(seconds: float = 1.0) -> float:
    """Fraction of all cores busy over `seconds`; NaN where /proc/stat is unavailable."""
    total, idle = machine_cpu()
    time.sleep(seconds)
    total2, idle2 = machine_cpu()
    return 1.0 - (idle2 - idle) / (total2 - total) if total2 > total else float("nan")


class ServerProcess:
    """A GlassboxServer in a spawned child process; `port` and `pid` once started."""

    def __init__(self, repository: Path, label: str) -> None:
        self.repository = repository
        self.label = label
        self.port = 0
        self.pid = 0
        self._context = mp.get_context("spawn")
        self._stop = self._context.Event()
        self._process: Any = None

    def __enter__(self) -> ServerProcess:
        busy = machine_busy()
        if busy > 0.2:
            print(
                f"[{self.label}] warning: other processes keep {busy:.0%} of the CPU busy before the server "
                "starts; the ratios below are unreliable",
                flush=True,
            )
        receiver, sender = self._context.Pipe(duplex=False)
        self._process = self._context.Process(
            target=_serve_child, args=(str(self.repository), sender, self._stop), daemon=True
        )
        started = time.perf_counter()
        self._process.start()
        sender.close()
        try:
            if not receiver.poll(180):
                raise RuntimeError(f"{self.label}: the server did not start within 180 s")
            kind, value = receiver.recv()
        except EOFError as exc:
            raise RuntimeError(f"{self.label}: the server process died while starting") from exc
        finally:
            receiver.close()
        if kind != "port":
            self.__exit__(None, None, None)
            raise RuntimeError(f"{self.label}: the server failed to start:\n{value}")
        self.port = value
        self.pid = self._process.pid
        print(
            f"[{self.label}] server pid {self.pid} on 127.0.0.1:{self.port}, "
            f"started in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._process is None:
            return
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            print(
                f"[{self.label}] the server had not exited 10 s after stop(grace=0): terminated", flush=True
            )
            self._process.terminate()
            self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return float("nan")

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(f"127.0.0.1:{self.port}", options=CHANNEL_OPTIONS)


async def wait_serving(channel: grpc.aio.Channel, seconds: float = 60.0) -> None:
    """Until the overall health status is SERVING (models loaded, services up)."""
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + seconds
    while True:
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the server never reported SERVING")
        await asyncio.sleep(0.2)


class MemorySampler:
    """VmRSS and VmHWM (kB) of a process from /proc/<pid>/status, every `interval` s in a thread."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []  # (monotonic time, VmRSS kB, VmHWM kB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def read(self) -> tuple[int, int]:
        values = {"VmRSS": 0, "VmHWM": 0}
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in values:
                    values[key] = int(rest.split()[0])
        except (OSError, ValueError, IndexError):
            pass
        return values["VmRSS"], values["VmHWM"]

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, hwm = self.read()
            self.samples.append((time.monotonic(), rss, hwm))
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def between(self, start: float, end: float) -> list[int]:
        return [rss for t, rss, _ in self.samples if start <= t <= end and rss]


# ------------------------------------------------------------------------------------- repositories


def write_resnet18(root: Path) -> Path:
    """A random-weights torchvision resnet18 (seed 0) as `resnet18/1` (safetensors); returns the folder."""
    from glassbox.models.architectures import build_architecture
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = build_architecture("resnet18", 1000)
    folder = root / "resnet18" / "1"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "model.safetensors"))
    labels = ", ".join(f'"class_{i}"' for i in range(1000))
    (folder / "model.toml").write_text(
        'format = "safetensors"\narchitecture = "resnet18"\nweights = "model.safetensors"\n'
        f"labels = [{labels}]\n[input]\nheight = 224\nwidth = 224\n"
        "mean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n"
        f'[explain]\ndefault_cam_layer = "{RESNET_CAM}"\n'
    )
    return folder


def write_shapes(root: Path, models: Path) -> str:
    """`shapes/1`: the trained demo model from `models` when there is one (its version folder only: no
    datasets, no monitoring), else a random-weights stand-in of the same architecture. Returns which."""
    folder = root / "shapes" / "1"
    folder.mkdir(parents=True)
    trained = models / "shapes" / "1"
    if (trained / "model.toml").is_file():
        for item in trained.iterdir():
            if item.is_file():
                (folder / item.name).write_bytes(item.read_bytes())
        return "trained demo model"
    from glassbox.models.architectures import build_architecture
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = build_architecture("glassbox.shapes_cnn", len(SHAPES_CLASSES))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "model.safetensors"))
    labels = ", ".join(f'"{c}"' for c in SHAPES_CLASSES)
    (folder / "model.toml").write_text(
        'format = "safetensors"\narchitecture = "glassbox.shapes_cnn"\nweights = "model.safetensors"\n'
        f"labels = [{labels}]\n[input]\nheight = 64\nwidth = 64\n"
        "mean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]\n"
        f'[explain]\ndefault_cam_layer = "{SHAPES_CAM}"\n'
    )
    return "random-weights stand-in"


def shapes_pngs(count: int) -> list[bytes]:
    """`count` 64×64 PNGs of the demo dataset (random noise if the generator is unavailable)."""
    from PIL import Image

    try:
        from glassbox.demo.shapes import generate

        arrays = [
            (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            for img in generate(count, seed=7, size=64).images
        ]
    except Exception:
        rng = np.random.default_rng(7)
        arrays = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(count)]
    out = []
    for array in arrays:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def uint8_image(seed: int, size: int = 224) -> tensor_pb2.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    tensor = tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_UINT8, shape=[size, size, 3], data=pixels.tobytes())
    return tensor_pb2.Image(pixels=tensor)


# ------------------------------------------------------------------------------------------- calling


async def timed(make_call: Callable[[], Awaitable[Any]]) -> tuple[str, float, Any]:
    """(status code name, seconds, reply or None) of one call; never raises but CancelledError."""
    started = time.perf_counter()
    try:
        reply = await make_call()
        return "OK", time.perf_counter() - started, reply
    except grpc.aio.AioRpcError as error:
        return error.code().name, time.perf_counter() - started, None
    except asyncio.CancelledError:
        raise
    except Exception as error:
        return f"CLIENT_{type(error).__name__}", time.perf_counter() - started, None


class Shapes:
    """The mix's calls on `shapes`: one request per (kind, image), built once."""

    def __init__(self, channel: grpc.aio.Channel, pngs: list[bytes]) -> None:
        self.models = model_service_pb2_grpc.ModelServiceStub(channel)
        self.attribution = attribution_service_pb2_grpc.AttributionServiceStub(channel)
        images = [tensor_pb2.Image(encoded=png) for png in pngs]
        params: dict[str, Any] = {
            "saliency": apb.SaliencyParams(),
            "grad_cam": apb.GradCamParams(layer=SHAPES_CAM),
            "occlusion": apb.OcclusionParams(window=8, stride=2, baseline_value=0.5),
            "lime": apb.LimeParams(samples=1024, superpixels=50, seed=0, baseline_value=0.5),
        }
        self.requests: dict[str, list[Any]] = {
            "predict": [model_service_pb2.PredictRequest(model="shapes", images=[i], top_k=1) for i in images]
        }
        for kind, p in params.items():
            self.requests[kind] = [
                apb.AttributeRequest(
                    model="shapes",
                    images=[i],
                    output=apb.OutputOptions(map=True),
                    bypass_cache=True,
                    **{kind: p},
                )
                for i in images
            ]

    def call(self, kind: str, index: int, timeout: float = MIX_DEADLINE_S) -> Callable[[], Awaitable[Any]]:
        requests = self.requests[kind]
        request = requests[index % len(requests)]
        if kind == "predict":
            return lambda: self.models.Predict(request, timeout=timeout)
        return lambda: self.attribution.Attribute(request, timeout=timeout)


async def sequential(
    make_call: Callable[[int], Callable[[], Awaitable[Any]]], count: int, budget_s: float
) -> Tally:
    """`count` calls one after another (fewer if `budget_s` runs out)."""
    tally = Tally()
    deadline = time.monotonic() + budget_s
    for i in range(count):
        if time.monotonic() > deadline:
            break
        code, seconds, _ = await timed(make_call(i))
        tally.add(code, seconds)
    return tally


# ----------------------------------------------------------------------------------- mix and memory


async def scenario_mix(
    server: ServerProcess, seconds: float, clients: int, with_memory: bool, selected: set[str]
) -> list[Check]:
    print(f"\n== mix: {clients} callers for {seconds:.0f} s on shapes (64×64) ==", flush=True)
    sampler = MemorySampler(server.pid)
    sampler.start()
    channels = [server.channel() for _ in range(4)]
    checks: list[Check] = []
    try:
        await wait_serving(channels[0])
        pngs = shapes_pngs(8)
        callers = [Shapes(c, pngs) for c in channels]
        one = callers[0]
        for kind in MIX_KINDS:  # warm-up: every call kind runs before anything is timed
            for i in range(1 if kind in EXPENSIVE_KINDS else 3):
                code, took, _ = await timed(one.call(kind, i))
                if code != "OK":
                    print(f"  warm-up {kind}: {code} after {ms(took)} ms", flush=True)
        idle: dict[str, Tally] = {}
        for kind in LATENCY_KINDS:
            idle[kind] = await sequential(lambda i, k=kind: one.call(k, i), 50, 30.0)
            print(
                f"  idle {kind:<9} {len(idle[kind].ok)}/{idle[kind].calls} OK, p50 "
                f"{ms(percentile(idle[kind].ok, 50))} ms, p99 {ms(percentile(idle[kind].ok, 99))} ms",
                flush=True,
            )
        await asyncio.sleep(1.0)
        warm_start = time.monotonic()
        await asyncio.sleep(1.0)
        warmed = statistics.median(sampler.between(warm_start, time.monotonic()) or [sampler.read()[0]])

        tallies = {kind: Tally() for kind in MIX_KINDS}
        in_flight = Counter[str]()
        issued = 0
        load_start = time.monotonic()
        stop_at = load_start + seconds
        cpu_at_start = (server.cpu_seconds(), time.process_time(), machine_cpu())

        async def caller(n: int) -> None:
            nonlocal issued
            rng = random.Random(n)
            position = n % len(MIX_KINDS)
            stub = callers[n % len(callers)]
            while time.monotonic() < stop_at and issued < MAX_CALLS_PER_PHASE:
                kind = MIX_KINDS[position % len(MIX_KINDS)]
                position += 1
                issued += 1
                in_flight[kind] += 1
                code, took, _ = await timed(stub.call(kind, rng.randrange(8)))
                in_flight[kind] -= 1
                tallies[kind].add(code, took)
                if code in REFUSAL_CODES:
                    await asyncio.sleep(rng.uniform(*REFUSAL_BACKOFF_S))

        async def progress() -> None:
            while True:
                await asyncio.sleep(10)
                done = {k: len(t.ok) for k, t in tallies.items()}
                print(
                    f"  t={time.monotonic() - load_start:4.0f} s  OK so far {done}  "
                    f"in flight {dict(in_flight)}",
                    flush=True,
                )

        lags: list[float] = []

        async def lag_probe() -> None:  # how late this process's event loop wakes up: client-side delay
            while True:
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - before - 0.01)

        reporter = asyncio.create_task(progress())
        prober = asyncio.create_task(lag_probe())
        await asyncio.gather(*(caller(n) for n in range(clients)))
        reporter.cancel()
        prober.cancel()
        load_end = time.monotonic()
        wall = load_end - load_start
        server_cpu = server.cpu_seconds() - cpu_at_start[0]
        client_cpu = time.process_time() - cpu_at_start[1]
        (ticks, idle_ticks), (ticks0, idle_ticks0) = machine_cpu(), cpu_at_start[2]
        busy = (ticks - idle_ticks) - (ticks0 - idle_ticks0)
        others = busy / os.sysconf("SC_CLK_TCK") - server_cpu - client_cpu
        print(
            f"  load phase {wall:.1f} s ({wall - seconds:.1f} s draining the calls in flight at the end);"
            f" CPU used: server {server_cpu:.1f} s, this benchmark {client_cpu:.1f} s, other processes "
            f"{max(0.0, others):.1f} s, of {wall * (os.cpu_count() or 1):.0f} core-seconds;\n"
            "  this benchmark's event loop woke late by "
            f"{ms(percentile(lags, 50))} ms p50, {ms(percentile(lags, 99))} ms p99 (client-side delay)"
        )
        header = (
            f"  {'kind':<9} {'calls':>6} {'OK':>6} {'OK/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'idle p99':>9} "
            f"{'×idle':>6} {'refusal p50/p99 ms':>19}  non-OK by code"
        )
        print(header)
        deadline_total = 0
        for kind in MIX_KINDS:
            t = tallies[kind]
            p99 = percentile(t.ok, 99)
            idle_p99 = percentile(idle[kind].ok, 99) if kind in idle else float("nan")
            refused = t.refusals()
            deadline_total += len(t.errors.get("DEADLINE_EXCEEDED", []))
            print(
                f"  {kind:<9} {t.calls:>6} {len(t.ok):>6} {len(t.ok) / wall:>7.2f} "
                f"{ms(percentile(t.ok, 50)):>8} {ms(p99):>8} {ms(idle_p99):>9} "
                f"{(p99 / idle_p99 if idle_p99 == idle_p99 else float('nan')):>6.2f} "
                f"{ms(percentile(refused, 50)) + '/' + ms(percentile(refused, 99)):>19}  {t.codes()}",
                flush=True,
            )
            if kind in LATENCY_KINDS:
                share = len(t.ok) / t.calls if t.calls else float("nan")
                checks.append(
                    Check(
                        "mix",
                        f"{kind}: ≥ 99% OK",
                        "n/a" if share != share else f"{share:.1%} of {t.calls}",
                        share == share and share >= 0.99,
                    )
                )
                checks.append(
                    ratio_check("mix", f"{kind}: p99 ≤ 3 × idle p99", p99 / idle_p99, 3.0, at_most=True)
                )
            else:
                worst = percentile(refused, 99)
                checks.append(
                    Check(
                        "mix",
                        f"{kind}: refusals within 50 ms (p99)",
                        f"{len(refused)} refused, p99 {ms(worst)} ms, "
                        f"max {ms(max(refused, default=float('nan')))} ms",
                        not refused or worst <= 0.050,
                    )
                )
        checks.append(
            Check("mix", "no DEADLINE_EXCEEDED", f"{deadline_total} of {issued} calls", deadline_total == 0)
        )
        if "mix" not in selected:
            checks = []

        if with_memory:
            print("  waiting 10 s for the memory level after the load ...", flush=True)
            await asyncio.sleep(10.0)
            after_start = time.monotonic()
            await asyncio.sleep(1.0)
            after = statistics.median(sampler.between(after_start, time.monotonic()) or [sampler.read()[0]])
            peak = max(sampler.between(load_start, load_end) or [0])
            hwm = sampler.read()[1]
            ratio = after / warmed if warmed else float("nan")
            print(
                f"\n== memory (server VmRSS) ==\n  warmed-up {warmed / 1024:.0f} MiB, peak during the mix "
                f"{peak / 1024:.0f} MiB (VmHWM {hwm / 1024:.0f} MiB), 10 s after {after / 1024:.0f} MiB: "
                f"after / warmed-up = {ratio:.2f}",
                flush=True,
            )
            checks.append(
                Check(
                    "memory",
                    "RSS 10 s after ≤ 1.1 × warmed-up",
                    f"{warmed / 1024:.0f} → peak {peak / 1024:.0f} → {after / 1024:.0f} MiB ({ratio:.2f}×)",
                    ratio == ratio and ratio <= 1.1,
                )
            )
    finally:
        sampler.stop()
        for c in channels:
            await c.close()
    return checks


# ----------------------------------------------------------------------------------------- batching


def saliency_request(image: tensor_pb2.Image, model: str = "resnet18") -> apb.AttributeRequest:
    return apb.AttributeRequest(
        model=model,
        images=[image],
        targets=apb.TargetSpec(class_indices=[TARGET]),
        output=apb.OutputOptions(map=True),
        bypass_cache=True,
        saliency=apb.SaliencyParams(),
    )


def floor_networks(folder: Path) -> dict[str, torch.nn.Module]:
    """The floor's candidates: the eager network on the weights in `folder`, and the network the server
    runs for input gradients (BatchNorm folded, channels_last weights) when it can be built here."""
    from glassbox.backends.torch_backend import NormalizedModel
    from glassbox.models.architectures import build_architecture
    from safetensors.torch import load_file

    net = build_architecture("resnet18", 1000)
    net.load_state_dict(load_file(str(folder / "model.safetensors")))
    candidates: dict[str, torch.nn.Module] = {
        "eager": NormalizedModel(net.eval(), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)).eval()
    }
    try:  # the server's own network (BatchNorm folded, channels_last weights)
        from glassbox.core.model_config import load_config
        from glassbox.models.loaders import load_model

        model = load_model("resnet18", "1", folder, load_config(folder), device=torch.device("cpu"))
        served = getattr(model, "input_gradient_network", None) or model.differentiable
        candidates["served (folded)"] = served()
    except Exception as error:
        print(f"  (the server's network is not available in-process: {type(error).__name__}: {error})")
    for module in candidates.values():
        for parameter in module.parameters():
            parameter.requires_grad_(False)
    return candidates


def in_process_floor(candidates: dict[str, torch.nn.Module], label: str, batch: int = 8) -> tuple[float, str]:
    """(images/s, which network) of the best bare forward + backward of `batch` images, one class score
    per row, over `candidates` (best of 6 runs each after a warm-up)."""
    x = torch.rand(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    rows = torch.arange(batch)
    best: dict[str, float] = {}
    for name, module in candidates.items():

        def run(module: torch.nn.Module = module) -> None:
            pixels = x.clone().requires_grad_(True)
            torch.autograd.grad(module(pixels)[rows, TARGET].sum(), pixels)

        run()
        times = []
        for _ in range(6):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        best[name] = batch / min(times)
    print(
        f"  (a) in-process fwd+bwd, batch {batch}, {label}: "
        + ", ".join(f"{k} {v:.2f} images/s" for k, v in best.items()),
        flush=True,
    )
    name = max(best, key=best.__getitem__)
    return best[name], name


async def throughput(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    requests: list[apb.AttributeRequest],
    seconds: float,
    timeout: float = 60.0,
) -> tuple[float, Tally]:
    """len(requests) callers, each sending its request back to back for `seconds`; (OK images/s, tally).
    The rate is OK calls over the time from the start to the last call's end."""
    tally = Tally()
    started = time.monotonic()
    stop_at = started + seconds

    async def caller(request: apb.AttributeRequest) -> None:
        calls = 0
        while time.monotonic() < stop_at and calls < MAX_CALLS_PER_PHASE:
            calls += 1
            code, took, _ = await timed(lambda: stub.Attribute(request, timeout=timeout))
            tally.add(code, took)
            if code in REFUSAL_CODES:
                await asyncio.sleep(random.uniform(*REFUSAL_BACKOFF_S))

    await asyncio.gather(*(caller(r) for r in requests))
    return len(tally.ok) / (time.monotonic() - started), tally


async def scenario_batching(server: ServerProcess, folder: Path, seconds: float) -> list[Check]:
    window = min(20.0, seconds)
    print(f"\n== batching: resnet18 224×224 saliency, 8 callers for {window:.0f} s ==", flush=True)
    channel = server.channel()
    try:
        await wait_serving(channel)
        stub = attribution_service_pb2_grpc.AttributionServiceStub(channel)
        requests = [saliency_request(uint8_image(seed)) for seed in range(8)]
        for request in requests[:2]:  # warm-up
            code, took, _ = await timed(lambda r=request: stub.Attribute(r, timeout=60))
            if code != "OK":
                print(f"  warm-up saliency: {code} after {ms(took)} ms", flush=True)
        networks = floor_networks(folder)
        floor, network = in_process_floor(networks, "server idle, before (b)")
        single, single_tally = await throughput(stub, requests[:1], min(10.0, window))
        print(
            f"  (b) one caller over gRPC: {single:.2f} images/s ({len(single_tally.ok)} OK, "
            f"p50 {ms(percentile(single_tally.ok, 50))} ms; non-OK: {single_tally.codes()})",
            flush=True,
        )
        concurrent, tally = await throughput(stub, requests, window)
        print(
            f"  (c) 8 callers over gRPC: {concurrent:.2f} images/s ({len(tally.ok)} OK, "
            f"p50 {ms(percentile(tally.ok, 50))} ms, p99 {ms(percentile(tally.ok, 99))} ms; "
            f"non-OK: {tally.codes()})",
            flush=True,
        )
        # Measured again once the server is idle again; the faster of the two counts (a load spike from
        # outside during one of them cannot flatter the ratio).
        again, network_again = in_process_floor(networks, "server idle, after (c)")
        if again > floor:
            floor, network = again, network_again
        print(
            f"  (c)/(a) = {concurrent / floor:.2f} (floor: {network}, {floor:.2f} images/s)   (c)/(b) = "
            f"{concurrent / single if single else float('nan'):.2f}",
            flush=True,
        )
        return [
            ratio_check(
                "batching",
                "(c) 8 callers / (a) in-process batch of 8 ≥ 0.9",
                concurrent / floor,
                0.9,
                at_most=False,
            ),
            ratio_check(
                "batching",
                "(c) 8 callers / (b) one caller ≥ 1.0",
                concurrent / single if single else float("nan"),
                1.0,
                at_most=False,
            ),
        ]
    finally:
        await channel.close()


# ----------------------------------------------------------------------------------------- fairness


async def scenario_fairness(server: ServerProcess) -> list[Check]:
    print("\n== fairness: resnet18 saliency latency, idle and beside two occlusion callers ==", flush=True)
    channels = [server.channel() for _ in range(3)]
    try:
        await wait_serving(channels[0])
        stub = attribution_service_pb2_grpc.AttributionServiceStub(channels[0])
        request = saliency_request(uint8_image(100))
        await sequential(lambda _i: lambda: stub.Attribute(request, timeout=60), 2, 60)  # warm-up
        idle = await sequential(lambda _i: lambda: stub.Attribute(request, timeout=60), 20, 60)
        idle_median = statistics.median(idle.ok) if idle.ok else float("nan")
        print(f"  idle saliency: median {ms(idle_median)} ms over {len(idle.ok)} OK ({idle.codes()})")

        occlusion = apb.AttributeRequest(
            model="resnet18",
            images=[uint8_image(101)],
            targets=apb.TargetSpec(class_indices=[TARGET]),
            bypass_cache=True,
            occlusion=apb.OcclusionParams(window=16, stride=8, baseline_value=0.5),
        )
        heavy = Tally()
        stop = asyncio.Event()

        async def occluder(channel: grpc.aio.Channel) -> None:
            occluding = attribution_service_pb2_grpc.AttributionServiceStub(channel)
            calls = 0
            while not stop.is_set() and calls < 1000:
                calls += 1
                code, took, _ = await timed(lambda: occluding.Attribute(occlusion, timeout=60))
                heavy.add(code, took)
                if code != "OK":
                    await asyncio.sleep(0.1)

        loops = [asyncio.create_task(occluder(c)) for c in channels[1:]]
        await asyncio.sleep(2.0)  # both occlusion calls are computing now
        loaded = await sequential(lambda _i: lambda: stub.Attribute(request, timeout=60), 20, 90)
        stop.set()
        for task in loops:
            task.cancel()  # cancels the occlusion calls in flight
        await asyncio.gather(*loops, return_exceptions=True)
        loaded_median = statistics.median(loaded.ok) if loaded.ok else float("nan")
        ratio = loaded_median / idle_median
        print(
            f"  under load:    median {ms(loaded_median)} ms, p99 {ms(percentile(loaded.ok, 99))} ms over "
            f"{len(loaded.ok)} OK ({loaded.codes()}); occlusion calls finished meanwhile: {len(heavy.ok)} OK "
            f"(median {ms(percentile(heavy.ok, 50))} ms), non-OK: {heavy.codes()}\n"
            f"  loaded / idle median = {ratio:.2f}",
            flush=True,
        )
        return [
            ratio_check(
                "fairness", "saliency median beside 2 occlusions ≤ 1.5 × idle", ratio, 1.5, at_most=True
            )
        ]
    finally:
        for c in channels:
            await c.close()


# ------------------------------------------------------------------------------------------ streams


async def scenario_streams(server: ServerProcess, streams: int = 200) -> list[Check]:
    print(
        f"\n== streams: ListModels p99 beside {streams} Health/Watch + {streams} WatchJob streams ==",
        flush=True,
    )
    channel = server.channel()
    stream_channels = [server.channel() for _ in range(4)]
    tasks: list[asyncio.Task[None]] = []
    jobs = job_service_pb2_grpc.JobServiceStub(channel)
    job_id = ""
    try:
        await wait_serving(channel)
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)

        async def list_models_p99(label: str) -> tuple[float, Tally]:
            await sequential(
                lambda _i: lambda: models.ListModels(model_service_pb2.ListModelsRequest(), timeout=5), 10, 10
            )
            tally = await sequential(
                lambda _i: lambda: models.ListModels(model_service_pb2.ListModelsRequest(), timeout=5),
                200,
                30,
            )
            p99 = percentile(tally.ok, 99)
            print(
                f"  ListModels {label}: p50 {ms(percentile(tally.ok, 50))} ms, p99 {ms(p99)} ms "
                f"({len(tally.ok)}/{tally.calls} OK; non-OK: {tally.codes()})",
                flush=True,
            )
            return p99, tally

        await list_models_p99("idle")
        objective = generative_pb2.Objective(
            channel=generative_pb2.ChannelObjective(layer=SHAPES_CAM, channel=0)
        )
        spec = generative_pb2.FeatureVisualisationSpec(
            model="shapes", seed=0, objective=objective, steps=10000
        )
        code, _, reply = await timed(
            lambda: jobs.SubmitJob(job_service_pb2.SubmitJobRequest(feature_visualisation=spec), timeout=10)
        )
        if reply is not None:
            job_id = reply.job.id
            for _ in range(100):  # until it runs (≤ 20 s)
                code, _, got = await timed(
                    lambda: jobs.GetJob(job_service_pb2.GetJobRequest(job_id=job_id), timeout=5)
                )
                if got is not None and got.job.state != job_service_pb2.JOB_STATE_QUEUED:
                    break
                await asyncio.sleep(0.2)
            print(f"  job {job_id[:8]}…: {job_service_pb2.JobState.Name(got.job.state) if got else code}")
        else:
            print(f"  SubmitJob failed: {code}; WatchJob streams will fail too", flush=True)
        base_p99, _ = await list_models_p99("with the job running, no streams")

        opened = Counter[str]()
        messages = Counter[str]()
        ended: dict[str, Counter[str]] = {"health": Counter(), "job": Counter()}

        async def watch(kind: str, n: int) -> None:
            c = stream_channels[n % len(stream_channels)]
            if kind == "health":
                call = health_pb2_grpc.HealthStub(c).Watch(health_pb2.HealthCheckRequest(service=""))
            else:
                call = job_service_pb2_grpc.JobServiceStub(c).WatchJob(
                    job_service_pb2.WatchJobRequest(job_id=job_id or "0" * 32)
                )
            first = True
            try:
                async for _ in call:
                    if first:
                        opened[kind] += 1
                        first = False
                    messages[kind] += 1
                ended[kind]["OK (ended)"] += 1
            except grpc.aio.AioRpcError as error:
                ended[kind][error.code().name] += 1
            except asyncio.CancelledError:
                call.cancel()
                raise
            except Exception as error:
                ended[kind][f"CLIENT_{type(error).__name__}"] += 1

        checks_done = Tally()
        stop = asyncio.Event()

        async def prober() -> None:
            while not stop.is_set():
                code, took, reply = await timed(
                    lambda: health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                )
                if code == "OK" and reply.status != health_pb2.HealthCheckResponse.SERVING:
                    code = f"status {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
                checks_done.add(code, took)
                await asyncio.sleep(0.1)

        probe = asyncio.create_task(prober())
        for n in range(streams):
            tasks.append(asyncio.create_task(watch("health", n)))
            tasks.append(asyncio.create_task(watch("job", n)))
        opening = time.monotonic()
        while time.monotonic() - opening < 15:
            done = sum(opened.values()) + sum(sum(c.values()) for c in ended.values())
            if done >= 2 * streams:
                break
            await asyncio.sleep(0.1)
        print(
            f"  after {time.monotonic() - opening:.1f} s: Health/Watch open {opened['health']}/{streams}, "
            f"WatchJob open {opened['job']}/{streams}; ended: health {dict(ended['health']) or '-'}, "
            f"job {dict(ended['job']) or '-'}",
            flush=True,
        )

        await asyncio.sleep(1.0)  # the opening burst is over: what is measured is streams held open
        loaded_p99, _ = await list_models_p99(f"with the job and {sum(opened.values())} open streams")
        stop.set()
        await probe
        ratio = loaded_p99 / base_p99
        print(
            f"  Health.Check meanwhile: {len(checks_done.ok)}/{checks_done.calls} SERVING, max "
            f"{ms(max(checks_done.ok, default=float('nan')))} ms (non-OK: {checks_done.codes()}); "
            f"stream messages received: {dict(messages)}\n"
            f"  ListModels p99 with / without streams = {ratio:.2f}",
            flush=True,
        )
        return [
            Check(
                "streams",
                f"all {2 * streams} streams open",
                f"health {opened['health']}/{streams}, job {opened['job']}/{streams}",
                opened["health"] == streams and opened["job"] == streams,
            ),
            ratio_check("streams", "ListModels p99 with streams ≤ 1.2 × without", ratio, 1.2, at_most=True),
            Check(
                "streams",
                "Health.Check keeps answering SERVING",
                f"{len(checks_done.ok)}/{checks_done.calls}",
                checks_done.calls > 0 and len(checks_done.ok) == checks_done.calls,
            ),
        ]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if job_id:
            code, _, reply = await timed(
                lambda: jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=job_id), timeout=5)
            )
            state = code
            if reply is not None:
                state = job_service_pb2.JobState.Name(reply.job.state)
                state += " (cancel requested)" if reply.job.cancel_requested else ""
            print(f"  job cancelled: {state}", flush=True)
        for c in [channel, *stream_channels]:
            await c.close()


# --------------------------------------------------------------------------------------------- main


def run_scenario(
    label: str, repository: Path, body: Callable[[ServerProcess], Awaitable[list[Check]]]
) -> list[Check]:
    """One scenario on a fresh server; a scenario that cannot run reports a MISS, never stops the run."""
    try:
        with ServerProcess(repository, label) as server:
            return asyncio.run(body(server))
    except Exception as error:
        print(f"[{label}] could not run: {type(error).__name__}: {error}", flush=True)
        return [Check(label, "scenario runs", f"{type(error).__name__}", False)]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma list of {', '.join(SCENARIOS)}")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="the mix's duration (batching: min(20, this))"
    )
    parser.add_argument("--clients", type=int, default=48, help="concurrent callers in the mix")
    parser.add_argument(
        "--models", type=Path, default=ROOT / "models", help="where a trained shapes model is"
    )
    args = parser.parse_args()
    selected = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = selected - set(SCENARIOS)
    if unknown or not selected:
        parser.error(f"--only: unknown scenario(s) {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    if not 1 <= args.seconds <= 600 or not 1 <= args.clients <= 1000:
        parser.error("--seconds must be in 1..600 and --clients in 1..1000")
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="glassbox-load-") as tmp:
        shapes_repo = Path(tmp) / "shapes-repo"
        resnet_repo = Path(tmp) / "resnet-repo"
        shapes_origin = write_shapes(shapes_repo, args.models)
        print(f"shapes = {shapes_origin}; torch {torch.__version__}, {torch.get_num_threads()} threads here")
        if selected & {"mix", "memory"}:
            checks += run_scenario(
                "mix",
                shapes_repo,
                lambda s: scenario_mix(s, args.seconds, args.clients, "memory" in selected, selected),
            )
        if selected & {"batching", "fairness"}:
            folder = write_resnet18(resnet_repo)
            if "batching" in selected:
                checks += run_scenario(
                    "batching", resnet_repo, lambda s: scenario_batching(s, folder, args.seconds)
                )
            if "fairness" in selected:
                checks += run_scenario("fairness", resnet_repo, scenario_fairness)
        if "streams" in selected:
            checks += run_scenario("streams", shapes_repo, scenario_streams)
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d}, {platform.processor() or platform.machine()}, "
        f"{mp.cpu_count()} cores, Python {platform.python_version()}, grpcio {grpc.__version__}, "
        f"run time {time.monotonic() - started:.0f} s\n"
    )
    print("| scenario | target | measured | result |\n|---|---|---|---|")
    for c in checks:
        print(f"| {c.scenario} | {c.target} | {c.measured} | {'PASS' if c.passed else 'MISS'} |")
    missed = sum(not c.passed for c in checks)
    print(f"\n{len(checks) - missed} PASS, {missed} MISS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
