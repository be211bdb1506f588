"""The server's front door: one ASGI middleware that checks a request before any route sees it.

In order, for every HTTP request:
1. the API key, on /v1/ routes, from the headers alone, so a client without the key cannot make the
   server read (and hold) a body at all;
2. the body size: a declared Content-Length over the limit is refused at once, and the bytes of a
   `Transfer-Encoding: chunked` body (which declares no length) are counted as they arrive and refused
   the moment they pass the limit, so memory stays bounded whatever the client sends;
3. the content type of a /v1/ body: JSON sent as anything but `application/json` gets 415 naming it;
4. the client going away: a non-streaming request whose client disconnects is cancelled, so its rows
   leave the batch (streaming responses already stop at a disconnect).

Refusals are OpenAI-shaped JSON errors (`error_body`), sent with `Connection: close` so the rest of
an oversized upload is never read. Starlette's `Request` and FastAPI are not used here: this is plain
ASGI (the ASGI spec, "HTTP" connection scope and `http.request` / `http.disconnect` events).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable
from typing import Any

from genloom.errors import UserError

V1_PREFIX = "/v1/"
GUARDED_PATHS = ("/infill",)  # routes outside /v1/ that need the API key too (llama.cpp's shape, serve/text.py)
INDEX_PREFIX = "/v1/indexes/"  # where a key bound to indexes is let through (the route checks which)
BODY_METHODS = {"POST", "PUT", "PATCH"}

ErrorBody = Callable[..., dict[str, Any]]  # error_body(status, message, param, code) of genloom.serve.app


def check_api_key(api_key: str | None) -> None:
    """An empty key would compare equal to an empty header and turn authentication off silently."""
    if api_key is not None and not api_key.strip():
        raise UserError("--api-key: the key is empty, which would turn authentication off; give a key or drop the flag")


def key_matches(authorization: str, api_key: str) -> bool:
    """Whether an `Authorization` header carries `Bearer <api_key>` (compared in constant time)."""
    token = authorization[7:] if authorization[:7].lower() == "bearer " else ""
    return secrets.compare_digest(token.encode(), api_key.encode())


class Guard:
    """ASGI middleware: API key, body limit (chunked bodies included), content type, disconnects."""

    def __init__(
        self,
        app: Any,
        *,
        api_key: str | None,
        max_body: int,
        error_body: ErrorBody,
        index_keys: tuple[str, ...] = (),
    ) -> None:
        check_api_key(api_key)
        self.app = app
        self.api_key = api_key
        self.index_keys = index_keys  # keys bound to indexes: they open /v1/indexes/ only (serve/indexes.py)
        self.max_body = max_body
        self.error_body = error_body

    async def _refuse(self, send: Any, status: int, message: str, code: str, close: bool = False) -> None:
        body = json.dumps(self.error_body(status, message, None, code)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        if close:  # the client may still be uploading: do not read the rest on this connection
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        v1 = scope["path"].startswith(V1_PREFIX) or scope["path"] in GUARDED_PATHS
        authorization = headers.get("authorization", "")
        index_key = scope["path"].startswith(INDEX_PREFIX) and any(
            key_matches(authorization, k) for k in self.index_keys
        )
        if v1 and self.api_key is not None and not key_matches(authorization, self.api_key) and not index_key:
            message = "missing or wrong API key: send the header 'Authorization: Bearer KEY'"
            await self._refuse(send, 401, message, "invalid_api_key")
            return
        length = headers.get("content-length")
        too_large = f"the request body is larger than {self.max_body} bytes"
        if length is not None and (not (length.isascii() and length.isdigit()) or int(length) > self.max_body):
            await self._refuse(send, 413, too_large, "body_too_large", close=True)
            return
        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:  # read the whole body here, counting: a chunked upload stops at the limit
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await self._refuse(send, 413, too_large, "body_too_large", close=True)
                return
            if not message.get("more_body", False):
                break
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if v1 and body and kind != "application/json":
            sent = f"'{kind}'" if kind else "no Content-Type"
            message_text = f"the body must be JSON sent with 'Content-Type: application/json', got {sent}"
            await self._refuse(send, 415, message_text, "unsupported_media_type")
            return
        await self._run(scope, bytes(body), receive, send)

    async def _run(self, scope: Any, body: bytes, receive: Any, send: Any) -> None:
        """Run the app on the buffered body; cancel it if the client disconnects before the response ends."""
        replayed = False
        finished = asyncio.Event()

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def tracked_send(message: Any) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished.set()  # before the send: the server reports a disconnect once the response ends
            await send(message)

        app = asyncio.ensure_future(self.app(scope, replay, tracked_send))

        async def watch() -> None:
            while not finished.is_set():
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not finished.is_set():
                        app.cancel()  # the handler's `finally` cancels its jobs: their rows leave the batch
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await app
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # we are being cancelled ourselves
                raise
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
