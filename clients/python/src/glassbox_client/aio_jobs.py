"""`AsyncGlassboxClient.jobs`: the JobService for asyncio code, with the same calls as `Jobs`.

Cancelling the awaiting task (asyncio.CancelledError, e.g. Ctrl-C under asyncio.run) cancels the
job on the server too, unless `cancel_on_interrupt=False`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import grpc

from glassbox_client._generated.glassbox.v1 import job_service_pb2 as job_pb
from glassbox_client._generated.glassbox.v1 import job_service_pb2_grpc as job_grpc
from glassbox_client.calls import AsyncServiceCalls
from glassbox_client.errors import ResourceExhaustedError, UnavailableError, error_from_rpc
from glassbox_client.jobs import (
    DEFAULT_WAIT_S,
    POLL_INTERVAL_S,
    Job,
    JobUpdate,
    ProgressBar,
    list_request,
    show_progress,
    submit_request,
    watch_request,
    with_request_id,
)


class AsyncJobs:
    """The JobService calls over an asyncio client's channel, deadline and token."""

    def __init__(
        self, channel: grpc.aio.Channel, metadata: Callable[[], tuple], default_timeout: float
    ) -> None:
        self._call = AsyncServiceCalls(job_grpc.JobServiceStub(channel), metadata, default_timeout)

    async def submit(
        self,
        kind: str,
        *,
        model: str,
        timeout: float | None = None,
        request_id: str | None = None,
        **spec: Any,
    ) -> Job:
        """As Jobs.submit."""
        return Job.from_proto(await self._submit(submit_request(kind, model, spec, request_id), timeout))

    async def _submit(self, request: job_pb.SubmitJobRequest, timeout: float | None = None) -> job_pb.Job:
        """SubmitJob, seen through even when the awaiting task is cancelled meanwhile: the server may have
        queued the job already, so it is then cancelled too rather than left running for nobody."""
        submitted = asyncio.ensure_future(self._call("SubmitJob", with_request_id(request), timeout))
        try:
            return (await asyncio.shield(submitted)).job
        except asyncio.CancelledError:
            job = (await submitted).job
            await self.cancel(job.id, timeout=5)
            raise

    async def get(self, job_id: str, *, timeout: float | None = None) -> Job:
        return Job.from_proto((await self._call("GetJob", job_pb.GetJobRequest(job_id=job_id), timeout)).job)

    async def cancel(self, job_id: str, *, timeout: float | None = None) -> Job:
        response = await self._call("CancelJob", job_pb.CancelJobRequest(job_id=job_id), timeout)
        return Job.from_proto(response.job)

    async def list(
        self, *, states: Iterable[str] = (), kind: str = "", model: str = "", page_size: int = 0
    ) -> AsyncIterator[Job]:
        """As Jobs.list: every matching job, newest first."""
        request = list_request(states, kind, model, page_size)
        while True:
            page = await self._call("ListJobs", request, None)
            for job in page.jobs:
                yield Job.from_proto(job)
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    async def watch(
        self,
        job_id: str,
        *,
        preview_every_steps: int = 0,
        omit_result: bool = False,
        timeout: float = DEFAULT_WAIT_S,
    ) -> AsyncIterator[JobUpdate]:
        """As Jobs.watch."""
        request = watch_request(job_id, preview_every_steps, omit_result)
        try:
            stream = self._call.stub.WatchJob(request, timeout=timeout, metadata=self._call.metadata())
            async for message in stream:
                yield JobUpdate.from_proto(message)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, "WatchJob") from None

    async def wait(
        self,
        job_id: str,
        *,
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
        cancel_on_interrupt: bool = True,
    ) -> Job:
        """As Jobs.wait; cancelling the awaiting task cancels the job."""
        deadline = time.monotonic() + timeout
        bar = ProgressBar(job_id) if show_progress(progress) else None
        backoff = 0.2
        try:
            while True:
                try:
                    async for update in self.watch(job_id, timeout=max(deadline - time.monotonic(), 0.001)):
                        if bar is not None:
                            bar.update(update.job)
                        if update.job.finished:
                            return update.job
                except UnavailableError:
                    if time.monotonic() + backoff >= deadline:
                        raise
                except ResourceExhaustedError:
                    job = await self.get(job_id)
                    if bar is not None:
                        bar.update(job)
                    if job.finished:
                        return job
                    backoff = POLL_INTERVAL_S / 2
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        except asyncio.CancelledError:
            if cancel_on_interrupt:
                await asyncio.shield(self.cancel(job_id, timeout=5))
            raise
        finally:
            if bar is not None:
                bar.close()

    async def run(
        self,
        kind: str,
        *,
        model: str,
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
        **spec: Any,
    ) -> Job:
        """As Jobs.run."""
        job = await self.submit(kind, model=model, **spec)
        return (await self.wait(job.id, timeout=timeout, progress=progress)).raise_for_state()

    async def run_request(
        self,
        request: job_pb.SubmitJobRequest,
        *,
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
    ) -> job_pb.Job:
        """As Jobs.run_request: the SUCCEEDED job's message with its result; JobFailedError otherwise."""
        job_id = (await self._submit(request)).id
        (await self.wait(job_id, timeout=timeout, progress=progress)).raise_for_state()
        return (await self._call("GetJob", job_pb.GetJobRequest(job_id=job_id))).job
