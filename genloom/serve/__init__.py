"""Serving: an OpenAI-compatible HTTP API with streaming and continuous batching, and a web playground.

```python
from genloom.serve import create_app, serve
app = create_app(["runs/shakespeare"], api_key="secret")  # a FastAPI app, for any ASGI server
serve(["runs/shakespeare"], port=8000)  # or run it on uvicorn (what `genloom serve` does)
```
See docs/serving.md. FastAPI and uvicorn are imported when a server is made, not with genloom.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

from genloom.errors import UserError
from genloom.serve.app import create_app

__all__ = ["create_app", "serve"]


def serve(
    runs: Sequence[str | Path],
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    max_batch: int = 16,
    max_queue: int = 64,
    log_level: str = "info",
    log: Callable[[str], None] | None = None,
    indexes: dict[str, str] | None = None,
    index_keys: dict[str, list[str]] | None = None,
    quantize: str | None = None,
) -> None:
    """Serve `runs` on uvicorn at http://host:port until interrupted (Ctrl-C); `log` hears one line
    once the runs are loaded."""
    import uvicorn

    app = create_app(
        runs,
        api_key=api_key,
        max_batch=max_batch,
        max_queue=max_queue,
        indexes=indexes,
        index_keys=index_keys,
        quantize=quantize,
    )
    sock = bind(host, port)  # before the "serving" line: a port in use is one error line, not a false start
    if log is not None:
        models = ", ".join([*app.state.served.families, *(f"index {n}" for n in indexes or {})])
        log(f"genloom serve: {models} on http://{host}:{port} (playground at /, API at /v1)")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level))
    with sock, contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn shuts down, then re-raises it
        server.run(sockets=[sock])


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port, or a `UserError` saying why it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UserError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise UserError(f"--port {port}: cannot listen on {host}:{port} ({e.strerror}); choose another port") from None
    return sock
