"""GetServerInfo reports the settings the server runs with, not the defaults, so callers can read them."""

from __future__ import annotations

import glassbox
from glassbox.core.reasons import Reason
from glassbox.jobs.kinds import JobKinds
from glassbox.methods.registry import method_names
from glassbox.wire.kinds import job_kinds
from glassbox_client import GlassboxClient
from support.servers import RunningServer


def test_server_info_reports_the_settings_in_force(start_server) -> None:
    server: RunningServer = start_server(
        limits={"max_batch_images": 7, "max_image_pixels": 123_456},
        attribution={"max_samples": 99, "max_steps": 33},
        jobs={"queue_capacity": 5, "watch_heartbeat_seconds": 2.5, "page_size_max": 40},
        cache={"enabled": False},
    )
    with GlassboxClient(server.address, timeout=10) as client:
        info = client.server_info()
    assert info.version == glassbox.__version__ and len(info.replica_id) == 8
    assert info.limits["max_batch_images"] == 7 and info.limits["max_image_pixels"] == 123_456
    assert info.limits["max_message_bytes"] == 64 * 1024 * 1024
    assert (info.attribution["max_samples"], info.attribution["max_steps"]) == (99, 33)
    assert info.jobs["engine"] == "in_process" and info.jobs["queue_capacity"] == 5
    assert info.jobs["watch_heartbeat_seconds"] == 2.5 and info.jobs["page_size_max"] == 40
    assert info.jobs["max_attempts"] == 1  # the in-process engine never retries
    assert info.cache["engine"] == "disabled"
    assert info.methods == method_names() and info.job_kinds == JobKinds(job_kinds()).names()
    assert (info.principal, info.admin, info.token_required, info.tls) == ("", False, False, False)
    assert {r.reason for r in info.error_reasons} == {r.value for r in Reason}
    assert all(r.code and r.description for r in info.error_reasons)


def test_the_default_server_reports_its_cache(server: RunningServer) -> None:
    with GlassboxClient(server.address, timeout=10) as client:
        info = client.server_info()
    assert info.cache["engine"] == "in_process" and info.cache["ttl_seconds"] == 3600
    assert "grad_cam" in info.methods and "class_visualisation" in info.job_kinds
