"""Serving: an OpenAI-compatible HTTP API with streaming and continuous batching, and a web playground.

```python
from genloom.serve import create_app, serve
app = create_app(["runs/shakespeare"], api_key="secret")  # a FastAPI app, for any ASGI server
serve(["runs/shakespeare"], port=8000)  # or run it on uvicorn (what `genloom serve` does)
```
See docs/serving.md. FastAPI and uvicorn are imported when a server is made, not with genloom.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

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
) -> None:
    """Serve `runs` on uvicorn at http://host:port until interrupted (Ctrl-C); `log` hears one line
    once the runs are loaded."""
    import uvicorn

    app = create_app(runs, api_key=api_key, max_batch=max_batch, max_queue=max_queue)
    if log is not None:
        models = ", ".join(app.state.served.families)
        log(f"genloom serve: {models} on http://{host}:{port} (playground at /, API at /v1)")
    uvicorn.run(app, host=host, port=port, log_level=log_level)
