"""The FastAPI application: OpenAI-compatible routes over the scheduler, errors in OpenAI's shape.

Routes: `GET /v1/models`, `POST /v1/samples` (any run: its modality's sample file, base64), `GET
/health`, the playground at `/`, the OpenAPI document at `/openapi.json`; and each served modality's
own routes, added by the module its `Modality.routes()` names: `POST /v1/completions` and
`POST /v1/chat/completions` (both with `stream: true` as Server-Sent Events: `data: {chunk}` lines,
then `data: [DONE]`) in genloom/serve/text.py, `POST /v1/images/generations` in genloom/serve/images.py.
This module knows no modality by name. Every error, including FastAPI's own validation errors, has the body
`{"error": {"message", "type", "param", "code"}}` (OpenAI's API reference, "Error codes"): 400 for a
request the model cannot serve (prompt beyond the context, unknown character, ...), 401 for a missing
or wrong API key, 404 for an unknown model or path, 422 for a body that does not match the schema
(bad JSON is 400), 429 when the queue is full. A 500 only ever means a bug.
"""

import asyncio
import base64
import importlib
import json
import mimetypes
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import genloom as gl
from genloom.errors import UserError
from genloom.serve import schemas as s
from genloom.serve.middleware import Guard, check_api_key, key_matches
from genloom.serve.scheduler import Event, Job, QueueFull, Scheduler

STATIC = Path(__file__).parent / "static"
V1 = "/v1"  # the OpenAI API's route prefix; clients set base_url to http://HOST:PORT/v1
# the routes, named once for the app, its tests and bench/serve.py
MODELS = f"{V1}/models"
COMPLETIONS = f"{V1}/completions"
CHAT_COMPLETIONS = f"{V1}/chat/completions"
IMAGES = f"{V1}/images/generations"
SAMPLES = f"{V1}/samples"  # genloom's own: any run's sample file
MAX_BODY_BYTES = 1_000_000  # larger request bodies get 413 before they are parsed (serve/middleware.py)


class APIError(Exception):
    """An error answered as OpenAI's error body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": s.ErrorResponse, "description": kind} for code, kind in ERROR_TYPES.items() if code != 405
}


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "param": param, "code": code}
    }


def user_error(e: UserError, default_param: str | None = None) -> APIError:
    """A genloom `UserError` as a 400 naming the field its message starts with (e.g. "top_p must be ...")."""
    message = str(e)
    first = message.split(" ", 1)[0].rstrip(":")
    param = first if first.replace("_", "").isalpha() and first.islower() else default_param
    return APIError(400, message, param)


class Served:
    """The runs being served, by model id (the run directory's name), each with its modality."""

    def __init__(self, runs: Sequence[str | Path], indexes: bool = False, quantize: str | None = None) -> None:
        if not runs and not indexes:
            raise UserError("serve: give at least one run directory (or --index NAME=DIR)")
        self.handles: dict[str, Any] = {}
        self.modalities: dict[str, gl.Modality] = {}
        self.families: dict[str, str] = {}
        self.created = int(time.time())
        for run in runs:
            name = Path(run).resolve().name
            if name in self.families:
                raise UserError(f"serve: two runs are named {name!r}; model ids are directory names, rename one")
            modality, handle = gl.open_run(run, quantize=quantize)
            if modality.refuse_serving:
                raise UserError(f"serve {run}: {modality.refuse_serving}")
            self.handles[name] = handle
            self.modalities[name] = modality
            self.families[name] = getattr(handle.config, "family", modality.name)

    def cards(self) -> list[s.ModelCard]:
        return [
            s.ModelCard(
                id=name,
                created=self.created,
                kind=modality.kind or modality.name,
                family=self.families[name],
                **modality.model_card(self.handles[name]),
            )
            for name, modality in self.modalities.items()
        ]

    def by_modality(self) -> list[tuple[gl.Modality, dict[str, Any]]]:
        """Each served modality with its model ids and handles, in the order given."""
        groups: dict[str, tuple[gl.Modality, dict[str, Any]]] = {}
        for name, modality in self.modalities.items():
            groups.setdefault(modality.name, (modality, {}))[1][name] = self.handles[name]
        return list(groups.values())


@dataclass
class Server:
    """What a modality's route module gets (`add_routes(server, handles)`): the app, the scheduler, the
    auth dependency, and the model lookup that names the right route for a model of another kind."""

    app: Any
    scheduler: Scheduler
    served: Served
    auth: list[Any]
    paths: dict[str, list[str]] = field(default_factory=dict)  # model id → the routes that serve it

    def offer(self, handles: dict[str, Any], *paths: str) -> None:
        """Record that `paths` serve `handles` (for the wrong-route message)."""
        for name in handles:
            self.paths.setdefault(name, []).extend(paths)

    def handle(self, name: str, path: str, handles: dict[str, Any]) -> Any:
        """The handle of model `name` for route `path`, which serves `handles`."""
        if name in handles:
            return handles[name]
        if name in self.served.handles:
            kind = self.served.modalities[name].kind or self.served.modalities[name].name
            article = "an" if kind[:1] in "aeiou" else "a"
            routes = ", ".join(self.paths.get(name, [SAMPLES]))
            raise APIError(400, f"model {name!r} is {article} {kind} model: use {routes}", "model", "wrong_model_kind")
        raise APIError(
            404, f"model {name!r} does not exist; GET /v1/models lists the served ones", "model", "model_not_found"
        )

    def submit(self, jobs: list[Job]) -> None:
        """Queue every job of one request, or answer 400 (it could never fit) or 429 (full now)."""
        if len(jobs) > self.scheduler.max_queue:  # could never be queued: not a matter of retrying later
            raise APIError(
                400,
                f"n: {len(jobs)} choices in all (prompts × n), more than this server queues ({self.scheduler.max_queue})",
                "n",
            )
        try:
            self.scheduler.submit(jobs)
        except QueueFull as e:
            raise APIError(429, str(e), None, "queue_full") from None

    async def run_whole(self, model: str, work: Any) -> Any:
        """Run `work()` in the scheduler thread between two decode steps; its result, or its error as a
        400 (a genloom `UserError`) or 500."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()
        job = Job(model, 0, loop, events, sample=work)
        self.submit([job])
        try:
            ev = await events.get()
        finally:
            job.cancel()
        if ev.error is not None and ev.user_error:
            raise user_error(UserError(ev.error))
        if ev.error is not None:
            raise APIError(500, f"generation failed: {ev.error}", None, "server_error")
        return ev.result


def sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


# ---- the app ----------------------------------------------------------------------------------


def create_app(
    runs: Sequence[str | Path],
    api_key: str | None = None,
    max_batch: int = 16,
    max_queue: int = 64,
    on_step: Any = None,
    indexes: dict[str, str] | None = None,
    index_keys: dict[str, list[str]] | None = None,
    quantize: str | None = None,
) -> Any:
    """The FastAPI app serving `runs` (run directories of any modality that serves; the model id of each
    is its directory name). `api_key`: required as `Authorization: Bearer KEY` on /v1/ routes. `max_batch`:
    rows decoded together per model (1 = one request at a time); `max_queue`: waiting requests before
    429. `on_step`: called after every decode step (a test hook). `app.state.scheduler` is the scheduler.
    `indexes`: name → index directory served at /v1/indexes/{name}/ (serve/indexes.py); `index_keys`: name →
    the API keys bound to that index. `quantize`: "int8" or "int4" weights for the text runs (`gl.load`)."""
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException

    check_api_key(api_key)  # before the runs load: an empty key is a mistake, not "no key"
    index_keys = index_keys or {}
    opened = {}
    if indexes:
        from genloom.serve.indexes import open_indexes

        opened = open_indexes(indexes, index_keys)
    served = Served(runs, indexes=bool(opened), quantize=quantize)
    scheduler = Scheduler(max_batch=max_batch, max_queue=max_queue, on_step=on_step)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        yield
        scheduler.stop()

    app = FastAPI(
        title="genloom",
        version=gl.__version__,
        description="OpenAI-compatible routes for genloom runs of every modality (docs/serving.md).",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's doc pages load their scripts from a CDN; the document itself is /openapi.json
        redoc_url=None,
    )
    app.state.scheduler = scheduler
    app.state.served = served

    # ---- errors ----

    @app.exception_handler(APIError)
    async def api_error(request: Request, e: APIError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse(error_body(e.status, e.message, e.param, e.code), status_code=e.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = list(e.errors()) or [{"loc": (), "msg": "invalid request", "type": "invalid"}]
        # a union field (str | list) reports one error per member: the one that is not a mere type
        # mismatch says what is wrong with the value that was sent
        err = next((x for x in errors if not str(x.get("type")).endswith("_type")), errors[0])
        if err.get("type") == "json_invalid":
            return JSONResponse(
                error_body(400, f"the body is not valid JSON: {err.get('msg')}", None, "invalid_json"), 400
            )
        # the field path, without pydantic's names of union members ("constrained-str", "list[...]")
        loc = [str(x) for x in err.get("loc", ()) if x != "body" and (isinstance(x, int) or str(x).isidentifier())]
        param = ".".join(loc) or None
        message = f"{param}: {err.get('msg')}" if param else str(err.get("msg"))
        return JSONResponse(error_body(422, message, param, str(err.get("type"))), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(e.status_code, str(e.detail)), e.status_code, headers=e.headers)

    @app.exception_handler(UserError)
    async def genloom_error(request: Request, e: UserError) -> JSONResponse:
        err = user_error(e)
        return JSONResponse(error_body(400, err.message, err.param), 400)

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception) -> JSONResponse:
        return JSONResponse(error_body(500, f"internal error: {type(e).__name__}: {e}"), 500)

    # the API key, the body limit (chunked too), the content type and disconnects, before any route runs
    bound = tuple(k for ks in index_keys.values() for k in ks)
    app.add_middleware(Guard, api_key=api_key, max_body=MAX_BODY_BYTES, error_body=error_body, index_keys=bound)

    async def authorize(request: Request) -> None:  # the middleware checked already; kept for the schema's sake
        if api_key is not None and not key_matches(request.headers.get("authorization", ""), api_key):
            raise APIError(
                401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'", None, "invalid_api_key"
            )

    auth = [Depends(authorize)]

    server = Server(app, scheduler, served, auth)

    # ---- the shared routes ----

    @app.get("/health", response_model=s.Health)
    async def health() -> s.Health:
        running, waiting = scheduler.counts()
        return s.Health(models=len(served.families), running=running, waiting=waiting)

    @app.get(MODELS, response_model=s.ModelList, dependencies=auth, responses=ERROR_RESPONSES)
    async def list_models() -> s.ModelList:
        return s.ModelList(data=served.cards())

    @app.get(MODELS + "/{model}", response_model=s.ModelCard, dependencies=auth, responses=ERROR_RESPONSES)
    async def get_model(model: str) -> s.ModelCard:
        for card in served.cards():
            if card.id == model:
                return card
        raise APIError(404, f"model {model!r} does not exist", "model", "model_not_found")

    @app.post(SAMPLES, response_model=s.SamplesResponse, dependencies=auth, responses=ERROR_RESPONSES)
    async def samples(req: s.SamplesRequest) -> s.SamplesResponse:
        """Any run's samples in its modality's file format (PNG grid, text, CSV, ...), base64."""
        handle = server.handle(req.model, SAMPLES, served.handles)
        modality = served.modalities[req.model]
        options = {**req.options, "n": req.n, "seed": req.seed}

        def work() -> tuple[bytes, str, int]:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / Path(modality.sample_file).name
                result = modality.sample(handle, out, options)
                path = result.path or out
                media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                return path.read_bytes(), media, result.count

        data, media, count = await server.run_whole(req.model, work)
        return s.SamplesResponse(
            created=int(time.time()),
            model=req.model,
            media_type=media,
            count=count,
            b64=base64.b64encode(data).decode(),
        )

    # ---- each modality's own routes ----

    for modality, handles in served.by_modality():
        target = modality.routes()
        if target is not None:
            module, function = target.split(":")
            getattr(importlib.import_module(module), function)(server, handles)
        server.offer(handles, SAMPLES)

    if opened:
        from genloom.serve.indexes import add_index_routes

        add_index_routes(server, opened, index_keys, api_key)

    @app.get("/", include_in_schema=False)
    async def playground() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
