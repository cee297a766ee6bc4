"""The HTTP/JSON gateway: gRPC-JSON transcoding of every RPC with a `google.api.http` rule, the web page
and the OpenAPI document, on an aiohttp server in the gRPC server's own event loop.

Why this shape: the gateway is a transcoder in front of the gRPC server, not a second implementation.
Each HTTP call becomes the RPC's request message and is sent over a private channel to the same
`grpc.aio` server (a Unix socket in a directory only this user can open), so it passes through the
same interceptors (bearer-token check, error mapping, metrics), the same servicers, the same
admission and compute scheduler and the same message-size limits as a gRPC call. The `Authorization`
header travels as the call's metadata; an HTTP client that leaves sees its call cancelled; TLS (and
mutual TLS) is terminated here with the server's certificates. Responses use the proto3 JSON mapping;
errors are `google.rpc.Status` JSON with the gRPC call's details (`statuses.py`). `WatchJob` streams as
server-sent events (or NDJSON with `Accept: application/x-ndjson`).

aiohttp is the server library: one maintained package (aio-libs) that serves HTTP/1.1 with streaming
responses, request-size limits, TLS and handler cancellation in an event loop we already own, with
no separate ASGI server process or thread.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import ssl
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import descriptor, json_format, message
from PIL import Image

from glassbox.config import SecuritySettings, Settings
from glassbox.server.http import statuses
from glassbox.server.http.transcoding import BadRequest, Route, build_request, routes_for

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC = HERE / "static"
OPENAPI = HERE / "openapi" / "openapi.json"
TIMEOUT_HEADER = "grpc-timeout"
TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
SAMPLE_SIZE = 128


def parse_timeout(text: str) -> float:
    """A `grpc-timeout` header (`30S`, `500m`, ...) in seconds, as gRPC and Envoy's transcoder read it."""
    match = re.fullmatch(r"(\d{1,8})([HMSmun])", text.strip())
    if not match:
        raise BadRequest("grpc-timeout", f"{text!r} is not a gRPC timeout (digits and one of H M S m u n)")
    return int(match.group(1)) * TIMEOUT_UNITS[match.group(2)]


PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """No content sniffing anywhere; the page may load and call only its own origin."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    if response.content_type == "text/html":
        response.headers["Content-Security-Policy"] = PAGE_POLICY


def _status_response(status: Any, headers: dict[str, str] | None = None) -> web.Response:
    headers = dict(headers or {})
    retry_after = statuses.retry_after_header(status)
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return web.json_response(
        statuses.status_json(status), status=statuses.http_status(status), headers=headers
    )


def _message_json(response: message.Message) -> str:
    return json_format.MessageToJson(response, indent=None, ensure_ascii=False)


class HttpGateway:
    """The gateway's aiohttp application and its listening site; `start` and `stop` run on the loop of
    the gRPC server it calls."""

    def __init__(self, settings: Settings, services: Sequence[descriptor.ServiceDescriptor]) -> None:
        self.settings = settings
        self.routes = routes_for(services)
        self._callables: dict[str, Any] = {}
        self._channel: grpc.aio.Channel | None = None
        self._runner: web.AppRunner | None = None
        self._samples: dict[str, bytes] = {}
        self.port = 0

    def max_body_bytes(self) -> int:
        """The body limit: the setting, else the gRPC message limit plus the base64 growth of JSON."""
        configured = self.settings.http.max_body_bytes
        return configured or self.settings.limits.max_message_bytes * 4 // 3 + 64 * 1024

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes(), middlewares=[self._errors])
        app.on_response_prepare.append(_security_headers)
        app.router.add_route("*", "/v1/{tail:.*}", self._api)
        app.router.add_get("/openapi.json", self._openapi)
        app.router.add_get("/samples.json", self._sample_list)
        app.router.add_get("/samples/{name}.png", self._sample)
        app.router.add_get("/", self._index)
        app.router.add_static("/static/", STATIC, follow_symlinks=False)
        return app

    async def start(self, grpc_target: str) -> int:
        """Open the channel to the gRPC server at `grpc_target` and listen; returns the bound port."""
        self._channel = grpc.aio.insecure_channel(
            grpc_target,
            options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)],
        )
        self._samples = await asyncio.get_running_loop().run_in_executor(None, _sample_images)
        self._runner = web.AppRunner(self.application(), handler_cancellation=True, access_log=None)
        await self._runner.setup()
        host, _, port = self.settings.http.address.rpartition(":")
        site = web.TCPSite(self._runner, host.strip("[]") or None, int(port), ssl_context=self._ssl_context())
        await site.start()
        sockets = self._runner.addresses
        self.port = int(sockets[0][1]) if sockets else int(port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._channel is not None:
            await self._channel.close()

    def _ssl_context(self) -> ssl.SSLContext | None:
        security = self.settings.security
        return TlsFiles(security).context() if security.tls_enabled else None

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Every failure as a google.rpc.Status JSON body: the gateway's own refusals by their HTTP
        status, anything unexpected as INTERNAL with a reference id (the traceback only in the log)."""
        try:
            return await handler(request)
        except BadRequest as exc:
            return _status_response(
                statuses.bad_request(exc.field, exc.description, grpc.StatusCode.INVALID_ARGUMENT)
            )
        except web.HTTPRequestEntityTooLarge:
            limit = self.max_body_bytes()
            status = statuses.bad_request(
                "body",
                f"larger than the limit of {limit} bytes (http.max_body_bytes)",
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            )
            return web.json_response(statuses.status_json(status), status=413)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = {404: grpc.StatusCode.NOT_FOUND, 405: grpc.StatusCode.UNIMPLEMENTED}.get(
                exc.status, grpc.StatusCode.INVALID_ARGUMENT
            )
            status = statuses.simple(code, f"{request.method} {request.path}: {exc.reason}")
            return web.json_response(statuses.status_json(status), status=exc.status)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            reference = uuid.uuid4().hex[:12]
            log.exception("HTTP gateway error on %s %s (ref %s)", request.method, request.path, reference)
            status = statuses.simple(
                grpc.StatusCode.INTERNAL, f"internal error (ref {reference}); the server log has the details"
            )
            return web.json_response(statuses.status_json(status), status=500)

    def _route(self, request: web.Request) -> tuple[Route, dict[str, str]]:
        allowed = []
        for route in self.routes:
            bound = route.match(request.rel_url.raw_path)  # still percent-encoded: `%2F` stays in its segment
            if bound is None:
                continue
            if route.http_method == request.method:
                return route, bound
            allowed.append(route.http_method)
        if allowed:
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        raise web.HTTPNotFound(reason="no RPC is bound to this path (see /openapi.json)")

    async def _api(self, request: web.Request) -> web.StreamResponse:
        route, bound = self._route(request)
        body = await self._json_body(request, route)
        request_message = build_request(route, bound, request.query.items(), body)
        metadata = []
        authorization = request.headers.get("Authorization")
        if authorization:
            metadata.append(("authorization", authorization))
        header = request.headers.get(TIMEOUT_HEADER)
        timeout = parse_timeout(header) if header else None
        if route.streaming:
            return await self._stream(request, route, request_message, metadata, timeout)
        if timeout is None:
            timeout = self.settings.http.call_timeout_seconds
        try:
            response = await self._callable(route)(request_message, metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return _status_response(statuses.status_of(exc))
        return web.Response(text=_message_json(response), content_type="application/json")

    async def _json_body(self, request: web.Request, route: Route) -> Any:
        raw = await request.read()
        if not raw.strip():
            return {} if route.body == "*" else None
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadRequest("body", f"not UTF-8 text (byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise BadRequest(
                "body", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        except RecursionError:
            raise BadRequest("body", "nested too deeply") from None

    def _callable(self, route: Route) -> Any:
        if route.grpc_path not in self._callables:
            assert self._channel is not None, "start() opens the channel"
            factory = self._channel.unary_stream if route.streaming else self._channel.unary_unary
            self._callables[route.grpc_path] = factory(
                route.grpc_path,
                request_serializer=route.request_class.SerializeToString,
                response_deserializer=route.response_class.FromString,
            )
        return self._callables[route.grpc_path]

    async def _stream(
        self,
        request: web.Request,
        route: Route,
        request_message: message.Message,
        metadata: list[tuple[str, str]],
        timeout: float | None,
    ) -> web.StreamResponse:
        """Server-streaming RPC as server-sent events (`data:` per message, an `error` event on failure)
        or NDJSON (`{"result": ...}` / `{"error": ...}` lines, grpc-gateway's form). A call that fails
        before its first message gets the ordinary JSON error response and HTTP status."""
        ndjson = "application/x-ndjson" in request.headers.get("Accept", "")
        call = self._callable(route)(request_message, metadata=metadata, timeout=timeout)
        messages = call.__aiter__()
        try:
            first = await messages.__anext__()
        except StopAsyncIteration:
            first = None
        except grpc.aio.AioRpcError as exc:
            return _status_response(statuses.status_of(exc))
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/x-ndjson" if ndjson else "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)

        async def send(kind: str, payload: str) -> None:
            if ndjson:
                await response.write(f'{{"{kind}": {payload}}}\n'.encode())
            else:
                event = "message" if kind == "result" else "error"
                await response.write(f"event: {event}\ndata: {payload}\n\n".encode())

        try:
            if first is not None:
                await send("result", _message_json(first))
                async for item in messages:
                    await send("result", _message_json(item))
        except grpc.aio.AioRpcError as exc:
            await send("error", json.dumps(statuses.status_json(statuses.status_of(exc))))
        finally:
            call.cancel()
        await response.write_eof()
        return response

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _openapi(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(OPENAPI, headers={"Content-Type": "application/json"})

    async def _sample_list(self, request: web.Request) -> web.StreamResponse:
        return web.json_response([{"name": name, "url": f"/samples/{name}.png"} for name in self._samples])

    async def _sample(self, request: web.Request) -> web.StreamResponse:
        data = self._samples.get(request.match_info["name"])
        if data is None:
            raise web.HTTPNotFound(reason="no such sample image")
        return web.Response(body=data, content_type="image/png", headers={"Cache-Control": "max-age=3600"})


class TlsFiles:
    """The gateway's TLS context from the server's certificate files, reloaded for new connections when
    the files change (as the gRPC port does, `server/tls.py`); a broken renewal keeps the previous one."""

    def __init__(self, security: SecuritySettings) -> None:
        self._security = security
        self._paths = [
            p for p in (security.tls_cert, security.tls_key, security.tls_client_ca) if p is not None
        ]
        self._stamp = self._mtimes()
        self._current = self._load()

    def _mtimes(self) -> tuple[int, ...]:
        try:
            return tuple(path.stat().st_mtime_ns for path in self._paths)
        except OSError:
            return ()

    def _load(self) -> ssl.SSLContext:
        security = self._security
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        assert security.tls_cert is not None  # TlsFiles is built only when TLS is enabled
        context.load_cert_chain(certfile=security.tls_cert, keyfile=security.tls_key)
        if security.tls_client_ca is not None:
            context.load_verify_locations(cafile=security.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED if security.require_client_cert else ssl.CERT_OPTIONAL
        return context

    def context(self) -> ssl.SSLContext:
        """The listening context; its SNI hook (called on every handshake) switches the connection to
        the current certificates."""
        listening = self._load()
        listening.sni_callback = self._switch
        return listening

    def _switch(self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        stamp = self._mtimes()
        if stamp and stamp != self._stamp:
            self._stamp = stamp
            try:
                self._current = self._load()
                log.info("HTTP gateway: TLS certificates reloaded")
            except (ssl.SSLError, OSError) as exc:
                log.error("TLS certificates changed but cannot be used; keeping the previous ones: %s", exc)
        connection.context = self._current


def _sample_images() -> dict[str, bytes]:
    """One generated image of each demo shape class, as PNGs for the page's sample picker."""
    from glassbox.demo.shapes import CLASSES, generate

    batch = generate(len(CLASSES) * 2, seed=7, size=SAMPLE_SIZE)
    samples: dict[str, bytes] = {}
    for image, label in zip(batch.images, batch.labels.tolist(), strict=True):
        name = CLASSES[label]
        if name in samples:
            continue
        pixels = (image.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype("uint8")
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        samples[name] = buffer.getvalue()
    return dict(sorted(samples.items()))
