"""Who the server takes a caller to be, which owns the jobs it submits: a token file entry's name (a
token line of the format before names still works, as `token:<digest prefix>`), `admin` entries, and a
verified client certificate's subject; GetServerInfo tells the caller."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from glassbox.config import load_settings
from glassbox.server.app import GlassboxServer
from glassbox.server.auth import parse_token_line, read_token_file
from glassbox_client import NO_RETRIES, GlassboxClient, UnauthenticatedError
from test_tls import Pki, pki, repository, serve  # noqa: F401 - fixtures shared with the TLS tests

OLD_STYLE = "an-old-style-token-line"


def test_token_lines_name_their_principal_and_old_lines_still_work(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(
        f"# before names existed\n{OLD_STYLE}\n"
        f"sha256:{hashlib.sha256(b'ci-token-0123456789').hexdigest()} name=ci-bot\n"
        "ops-token-0123456789 name=ops admin  # the operators\n"
    )
    old, ci, ops = read_token_file(path)
    assert old.name == f"token:{hashlib.sha256(OLD_STYLE.encode()).hexdigest()[:12]}" and not old.admin
    assert (ci.name, ci.admin, ops.name, ops.admin) == ("ci-bot", False, "ops", True)
    with pytest.raises(ValueError, match=r"t: unknown attribute 'role=x'"):
        parse_token_line("ops-token-0123456789 role=x", source="t")
    with pytest.raises(ValueError, match="unknown attribute 'space'"):
        parse_token_line("ops-token-0123456789 name=has space", source="t")


def test_server_info_reports_the_token_principal(repository: Path, tmp_path: Path) -> None:  # noqa: F811
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{OLD_STYLE}\nalice-token-0123456789 name=alice\n")
    settings = load_settings(
        address="127.0.0.1:0",
        model_repository=repository,
        metrics={"port": 0},
        security={"token_file": tokens, "admin_principals": ["alice"]},
    )
    server = GlassboxServer(settings)
    address = f"127.0.0.1:{server.start()}"
    try:
        with GlassboxClient(address, token=OLD_STYLE, timeout=10) as old:
            info = old.server_info()
            assert info.principal.startswith("token:") and not info.admin and info.token_required
        with GlassboxClient(address, token="alice-token-0123456789", timeout=10) as alice:
            assert (alice.server_info().principal, alice.server_info().admin) == ("alice", True)
        with GlassboxClient(address, token="not-a-known-token-000", timeout=10) as stranger:
            with pytest.raises(UnauthenticatedError) as refused:
                stranger.server_info()
            assert refused.value.reason == "UNAUTHENTICATED"
    finally:
        server.stop(grace=0)


def test_a_client_certificate_subject_is_the_principal(serve, pki: Pki) -> None:  # noqa: F811
    f = pki.folder
    tls = {"tls_cert": f / "server.crt", "tls_key": f / "server.key", "tls_client_ca": f / "ca.crt"}
    address = serve(**tls, require_client_cert=True, admin_principals=["CN=client"])
    member = {"client_cert": f / "client.crt", "client_key": f / "client.key"}
    with GlassboxClient(address, timeout=10, retry=NO_RETRIES, ca_cert=f / "ca.crt", **member) as client:
        info = client.server_info()
    assert info.principal == "CN=client" and info.admin and info.tls and not info.token_required
