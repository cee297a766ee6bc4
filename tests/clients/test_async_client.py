"""The asyncio client: the same calls, awaited concurrently on one channel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest
from glassbox_client import AsyncGlassboxClient, InvalidArgumentError, NotFoundError
from support.model_repository import write_model_version
from support.servers import RunningServer


@pytest.fixture(scope="module")
def running(
    start_server: Callable[..., RunningServer], tmp_path_factory: pytest.TempPathFactory
) -> RunningServer:
    root = tmp_path_factory.mktemp("repository")
    write_model_version(root, "net", "1", seed=2)
    return start_server(model_repository=root)


def test_async_calls_run_concurrently_and_agree_with_each_other(running: RunningServer) -> None:
    rng = np.random.default_rng(0)
    images = [(rng.random((64, 64, 3)) * 255).astype(np.uint8) for _ in range(6)]

    async def scenario() -> None:
        async with AsyncGlassboxClient(running.address, timeout=20) as glassbox:
            await glassbox.wait_until_ready(timeout=10)
            assert await glassbox.health() == "SERVING"
            models, info = await asyncio.gather(glassbox.models(), glassbox.model("net"))
            assert [m.name for m in models] == ["net"] and info.input_size == (64, 64)
            calls = [glassbox.predict(image, model="net", top_k=2) for image in images]
            singles = await asyncio.gather(*calls)
            batch = await glassbox.predict(images, model="net", top_k=2)
            for (single,), batched in zip(singles, batch, strict=True):
                assert [c.index for c in single.classes] == [c.index for c in batched.classes]
                assert single.top.probability == pytest.approx(batched.top.probability, abs=1e-5)
            with pytest.raises(InvalidArgumentError) as error:
                await glassbox.predict(images[0], model="net", top_k=99)
            assert error.value.field == "top_k"
            with pytest.raises(NotFoundError):
                await glassbox.predict(images[0], model="missing")
            assert len(await glassbox.predict(images[0], model="net")) == 1

    asyncio.run(scenario())
