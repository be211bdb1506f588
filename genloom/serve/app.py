"""The FastAPI application: OpenAI-compatible routes over the scheduler, errors in OpenAI's shape.

Routes: `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions` (both with
`stream: true` as Server-Sent Events: `data: {chunk}` lines, then `data: [DONE]`),
`POST /v1/images/generations`, `GET /health`, the playground at `/`, the OpenAPI document at
`/openapi.json`. Every error, including FastAPI's own validation errors, has the body
`{"error": {"message", "type", "param", "code"}}` (OpenAI's API reference, "Error codes"): 400 for a
request the model cannot serve (prompt beyond the context, unknown character, ...), 401 for a missing
or wrong API key, 404 for an unknown model or path, 422 for a body that does not match the schema
(bad JSON is 400), 429 when the queue is full. A 500 only ever means a bug.
"""

import asyncio
import base64
import io
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import genloom as gl
from genloom.chat import stop_sequences
from genloom.errors import UserError
from genloom.generation import GenerationConfig, TokenLogprob
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
    """The runs being served, by model id (the run directory's name)."""

    def __init__(self, runs: Sequence[str | Path]) -> None:
        if not runs:
            raise UserError("serve: give at least one run directory")
        self.text: dict[str, gl.LanguageModel] = {}
        self.images: dict[str, gl.ImageModel] = {}
        self.families: dict[str, str] = {}
        self.created = int(time.time())
        for run in runs:
            name = Path(run).resolve().name
            if name in self.families:
                raise UserError(f"serve: two runs are named {name!r}; model ids are directory names, rename one")
            handle = gl.load(run)
            if isinstance(handle, gl.ImageModel):
                self.images[name] = handle
                self.families[name] = handle.config.family
            elif isinstance(handle, gl.LanguageModel):
                self.text[name] = handle
                self.families[name] = handle.config.family if handle.config is not None else "gpt"
            else:
                raise UserError(f"serve {run}: a masked language model (bert) has no completion endpoint to serve")

    def cards(self) -> list[s.ModelCard]:
        cards = []
        for name, lm in self.text.items():
            context = int(lm.model.config.block_size)  # type: ignore[union-attr,arg-type]
            cards.append(
                s.ModelCard(
                    id=name, created=self.created, kind="text", family=self.families[name], context_length=context
                )
            )
        for name, im in self.images.items():
            labels = im.class_names or None
            cards.append(
                s.ModelCard(id=name, created=self.created, kind="image", family=self.families[name], labels=labels)
            )
        return cards

    def language_model(self, name: str) -> gl.LanguageModel:
        if name in self.text:
            return self.text[name]
        if name in self.images:
            raise APIError(
                400, f"model {name!r} is an image model: use /v1/images/generations", "model", "wrong_model_kind"
            )
        raise APIError(
            404, f"model {name!r} does not exist; GET /v1/models lists the served ones", "model", "model_not_found"
        )

    def image_model(self, name: str) -> gl.ImageModel:
        if name in self.images:
            return self.images[name]
        if name in self.text:
            raise APIError(
                400,
                f"model {name!r} is a text model: use /v1/completions or /v1/chat/completions",
                "model",
                "wrong_model_kind",
            )
        raise APIError(
            404, f"model {name!r} does not exist; GET /v1/models lists the served ones", "model", "model_not_found"
        )


# ---- request → generation configs ----------------------------------------------------------------


def generation_configs(
    req: s.CompletionRequest | s.ChatCompletionRequest,
    lm: gl.LanguageModel,
    prompt_len: int,
    max_tokens: int | None,
    extra_stop: tuple[str, ...] = (),
    top_logprobs: int | None = None,
) -> list[GenerationConfig]:
    """One `GenerationConfig` per choice (choice i samples with seed + i)."""
    context = int(lm.model.config.block_size)  # type: ignore[union-attr,arg-type]
    prompt_param = "messages" if isinstance(req, s.ChatCompletionRequest) else "prompt"
    if prompt_len > context:
        raise APIError(
            400,
            f"{prompt_param}: {prompt_len} tokens, more than the model's context of {context} tokens; shorten it",
            prompt_param,
            "context_length_exceeded",
        )
    if max_tokens is None:
        max_tokens = context - prompt_len
    if prompt_len + max_tokens > context:
        raise APIError(
            400,
            f"max_tokens: the prompt's {prompt_len} tokens + max_tokens {max_tokens} exceed the model's context "
            f"of {context} tokens; ask for at most {context - prompt_len}",
            "max_tokens",
            "context_length_exceeded",
        )
    bias: dict[int, float] = {}
    for key, value in (req.logit_bias or {}).items():
        if not (key.isascii() and key.lstrip("-").isdigit()) or not -100 <= value <= 100:  # "²".isdigit() too
            raise APIError(
                400,
                f"logit_bias: expected token ids mapped to values in [-100, 100], got {key!r}: {value}",
                "logit_bias",
            )
        bias[int(key)] = value
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    configs = []
    for i in range(req.n):
        try:
            cfg = GenerationConfig(
                max_new_tokens=max_tokens,
                temperature=req.temperature,
                top_k=req.top_k,
                top_p=req.top_p if req.top_p < 1.0 else None,
                min_p=req.min_p,
                repetition_penalty=req.repetition_penalty,
                frequency_penalty=req.frequency_penalty,
                presence_penalty=req.presence_penalty,
                logit_bias=bias,
                stop=(*extra_stop, *stop),
                seed=None if req.seed is None else req.seed + i,
                logprobs=top_logprobs is not None,
                top_logprobs=top_logprobs or 0,
            )
        except UserError as e:
            raise user_error(e) from None
        configs.append(cfg)
    return configs


def finish(reason: str | None) -> str:
    """genloom's finish reasons in OpenAI's words."""
    return "length" if reason in ("length", "cancelled") else "stop"


def chat_logprobs(items: list[TokenLogprob]) -> s.ChoiceLogprobs:
    def top(text: str, lp: float) -> s.TopLogprob:
        return s.TopLogprob(token=text, logprob=lp, bytes=list(text.encode()))

    return s.ChoiceLogprobs(
        content=[
            s.TokenLogprobOut(
                token=t.text,
                logprob=t.logprob,
                bytes=list(t.text.encode()),
                top_logprobs=[top(x, lp) for _, x, lp in t.top],
            )
            for t in items
        ]
    )


def completion_logprobs(items: list[TokenLogprob], offset: int) -> s.CompletionLogprobs:
    offsets = []
    for t in items:
        offsets.append(offset)
        offset += len(t.text)
    return s.CompletionLogprobs(
        tokens=[t.text for t in items],
        token_logprobs=[t.logprob for t in items],
        top_logprobs=[{x: lp for _, x, lp in t.top} for t in items],
        text_offset=offsets,
    )


def merge(events: list[Event]) -> list[Event]:
    """Consecutive events of one choice as one (text and logprobs joined, the last finish reason)."""
    merged: list[Event] = []
    for ev in events:
        last = merged[-1] if merged else None
        if last is not None and last.index == ev.index and last.finish_reason is None and last.error is None:
            last.text += ev.text
            last.logprobs = [*last.logprobs, *ev.logprobs]
            last.finish_reason, last.completion_tokens, last.error = ev.finish_reason, ev.completion_tokens, ev.error
            last.user_error = ev.user_error
        else:
            merged.append(ev)
    return merged


def sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


# ---- the app ----------------------------------------------------------------------------------


def create_app(
    runs: Sequence[str | Path],
    api_key: str | None = None,
    max_batch: int = 16,
    max_queue: int = 64,
    on_step: Any = None,
) -> Any:
    """The FastAPI app serving `runs` (text and image run directories; the model id of each is its
    directory name). `api_key`: required as `Authorization: Bearer KEY` on /v1/ routes. `max_batch`:
    rows decoded together per model (1 = one request at a time); `max_queue`: waiting requests before
    429. `on_step`: called after every decode step (a test hook). `app.state.scheduler` is the scheduler."""
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException

    check_api_key(api_key)  # before the runs load: an empty key is a mistake, not "no key"
    served = Served(runs)
    scheduler = Scheduler(served.text, max_batch=max_batch, max_queue=max_queue, on_step=on_step)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        yield
        scheduler.stop()

    app = FastAPI(
        title="genloom",
        version=gl.__version__,
        description="OpenAI-compatible completions, chat and images for genloom runs (docs/serving.md).",
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
    app.add_middleware(Guard, api_key=api_key, max_body=MAX_BODY_BYTES, error_body=error_body)

    async def authorize(request: Request) -> None:  # the middleware checked already; kept for the schema's sake
        if api_key is not None and not key_matches(request.headers.get("authorization", ""), api_key):
            raise APIError(
                401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'", None, "invalid_api_key"
            )

    auth = [Depends(authorize)]

    # ---- running jobs ----

    def submit(jobs: list[Job]) -> None:
        if len(jobs) > scheduler.max_queue:  # could never be queued: not a matter of retrying later
            raise APIError(
                400,
                f"n: {len(jobs)} choices in all (prompts × n), more than this server queues ({scheduler.max_queue})",
                "n",
            )
        try:
            scheduler.submit(jobs)
        except QueueFull as e:
            raise APIError(429, str(e), None, "queue_full") from None

    def text_jobs(
        model: str, prompts: list[list[int]], configs: list[GenerationConfig], stream: bool
    ) -> tuple[list[Job], asyncio.Queue[Event]]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()
        jobs = []
        for p, ids in enumerate(prompts):
            for c, cfg in enumerate(configs):
                jobs.append(Job(model, p * len(configs) + c, loop, events, prompt=ids, config=cfg, stream=stream))
        return jobs, events

    async def gather(jobs: list[Job], events: asyncio.Queue[Event]) -> list[tuple[str, str, list[TokenLogprob], int]]:
        """Wait for every job; per choice: (text, finish reason, logprobs, completion tokens)."""
        texts = [""] * len(jobs)
        reasons = [""] * len(jobs)
        logprobs: list[list[TokenLogprob]] = [[] for _ in jobs]
        tokens = [0] * len(jobs)
        done = 0
        try:
            while done < len(jobs):
                ev = await events.get()
                if ev.error is not None:
                    status = 400 if ev.user_error else 500  # the request's own numbers, or a bug
                    raise APIError(status, f"generation failed: {ev.error}", None, "generation_failed")
                texts[ev.index] += ev.text
                logprobs[ev.index].extend(ev.logprobs)
                tokens[ev.index] = max(tokens[ev.index], ev.completion_tokens)
                if ev.finish_reason is not None:
                    reasons[ev.index] = finish(ev.finish_reason)
                    done += 1
        finally:
            for job in jobs:
                job.cancel()  # a no-op for finished jobs; stops the rest if this handler is cancelled
        return list(zip(texts, reasons, logprobs, tokens, strict=True))

    def usage(prompts: list[list[int]], completion_tokens: int) -> s.Usage:
        prompt_tokens = sum(len(p) for p in prompts)
        return s.Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )

    def stream(
        jobs: list[Job], events: asyncio.Queue[Event], chunk: Any, tail: dict[str, Any] | None, prompts: list[list[int]]
    ) -> StreamingResponse:
        """SSE of the chunks `chunk(event)` makes; a usage chunk (`tail`) if asked; then [DONE]."""

        async def body() -> AsyncIterator[str]:
            done, tokens = 0, [0] * len(jobs)
            try:
                while done < len(jobs):
                    ready = [await events.get()]
                    while not events.empty():  # a client slower than decoding gets several tokens per chunk
                        ready.append(events.get_nowait())
                    out = []
                    for ev in merge(ready):
                        if ev.error is not None:
                            yield sse(error_body(400 if ev.user_error else 500, f"generation failed: {ev.error}"))
                            return
                        tokens[ev.index] = max(tokens[ev.index], ev.completion_tokens)
                        done += ev.finish_reason is not None
                        if ev.text or ev.finish_reason is not None or ev.logprobs:
                            out.append(sse(chunk(ev)))
                    yield "".join(out)
                if tail is not None:
                    yield sse({**tail, "choices": [], "usage": usage(prompts, sum(tokens)).model_dump()})
                yield sse("[DONE]")
            finally:
                for job in jobs:
                    job.cancel()  # the client went away (or we are done): free the rows

        return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    def encode(lm: gl.LanguageModel, text: str, param: str) -> list[int]:
        try:
            return lm.prompt_ids(text)
        except UserError as e:
            raise APIError(400, f"{param}: {e}", param, "unencodable_prompt") from None

    # ---- routes ----

    stream_doc: dict[int | str, dict[str, Any]] = {
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}
    }
    text_route: dict[str, Any] = {"dependencies": auth, "responses": {**ERROR_RESPONSES, **stream_doc}}

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

    @app.post(COMPLETIONS, response_model=s.CompletionResponse, **text_route)
    async def completions(req: s.CompletionRequest) -> Any:
        lm = served.language_model(req.model)
        if req.echo:
            raise APIError(400, "echo: not supported by genloom; the prompt is not repeated in the output", "echo")
        texts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not texts:
            raise APIError(400, "prompt: expected a string or a non-empty list of strings", "prompt")
        prompts = [encode(lm, t, "prompt") for t in texts]
        configs = generation_configs(req, lm, max(len(p) for p in prompts), req.max_tokens, top_logprobs=req.logprobs)
        jobs, events, head = start(req.model, prompts, configs, "text_completion", req.stream)
        if req.stream:

            def chunk(ev: Event) -> dict[str, Any]:
                lp = completion_logprobs(ev.logprobs, 0).model_dump() if req.logprobs is not None else None
                reason = finish(ev.finish_reason) if ev.finish_reason else None
                return {
                    **head,
                    "choices": [{"index": ev.index, "text": ev.text, "logprobs": lp, "finish_reason": reason}],
                }

            tail = head if req.stream_options and req.stream_options.include_usage else None
            return stream(jobs, events, chunk, tail, prompts)
        results = await gather(jobs, events)
        choices = [
            s.CompletionChoice(
                index=i,
                text=text,
                finish_reason=reason,  # type: ignore[arg-type]
                logprobs=completion_logprobs(lps, len(texts[i // req.n])) if req.logprobs is not None else None,
            )
            for i, (text, reason, lps, _) in enumerate(results)
        ]
        return s.CompletionResponse(
            id=head["id"],
            created=head["created"],
            model=req.model,
            choices=choices,
            usage=usage(prompts, sum(r[3] for r in results)),
        )

    @app.post(CHAT_COMPLETIONS, response_model=s.ChatCompletionResponse, **text_route)
    async def chat_completions(req: s.ChatCompletionRequest) -> Any:
        lm = served.language_model(req.model)
        messages = []
        for i, m in enumerate(req.messages):
            content = m.content
            if not isinstance(content, str):
                if any(part.get("type") != "text" or not isinstance(part.get("text"), str) for part in content):
                    raise APIError(
                        400, f"messages[{i}].content: only parts of type 'text' are supported", f"messages.{i}.content"
                    )
                content = "".join(part["text"] for part in content)
            messages.append({"role": "system" if m.role == "developer" else m.role, "content": content})
        try:
            text = lm.chat_prompt(messages)
        except UserError as e:
            raise APIError(400, str(e), "messages") from None
        prompts = [encode(lm, text, "messages")]
        top = (req.top_logprobs or 0) if req.logprobs else None
        if req.top_logprobs and not req.logprobs:
            raise APIError(400, "top_logprobs: needs logprobs: true", "top_logprobs")
        max_tokens = req.max_completion_tokens or req.max_tokens
        configs = generation_configs(req, lm, len(prompts[0]), max_tokens, stop_sequences(lm.chat_template), top)
        jobs, events, head = start(req.model, prompts, configs, "chat.completion.chunk", req.stream)
        if req.stream:
            started: set[int] = set()

            def chunk(ev: Event) -> dict[str, Any]:
                delta: dict[str, Any] = {"content": ev.text} if ev.text else {}
                if ev.index not in started:  # the first chunk of a choice names the role
                    started.add(ev.index)
                    delta = {"role": "assistant", "content": ev.text}
                lp = chat_logprobs(ev.logprobs).model_dump() if req.logprobs else None
                reason = finish(ev.finish_reason) if ev.finish_reason else None
                return {
                    **head,
                    "choices": [{"index": ev.index, "delta": delta, "logprobs": lp, "finish_reason": reason}],
                }

            tail = head if req.stream_options and req.stream_options.include_usage else None
            return stream(jobs, events, chunk, tail, prompts)
        results = await gather(jobs, events)
        choices = [
            s.ChatChoice(
                index=i,
                message=s.AssistantMessage(content=text),
                finish_reason=reason,  # type: ignore[arg-type]
                logprobs=chat_logprobs(lps) if req.logprobs else None,
            )
            for i, (text, reason, lps, _) in enumerate(results)
        ]
        return s.ChatCompletionResponse(
            id=head["id"],
            created=head["created"],
            model=req.model,
            choices=choices,
            usage=usage(prompts, sum(r[3] for r in results)),
        )

    def start(
        model: str, prompts: list[list[int]], configs: list[GenerationConfig], kind: str, stream: bool
    ) -> tuple[list[Job], asyncio.Queue[Event], dict[str, Any]]:
        """Check the prompts against the model, queue one job per choice; returns the jobs, their
        event queue and the fields every response and chunk starts with."""
        for ids in prompts:
            try:
                scheduler.batchers[model].check(ids, configs[0])
            except UserError as e:
                raise user_error(e, "prompt") from None
        jobs, events = text_jobs(model, prompts, configs, stream)
        submit(jobs)
        prefix = "cmpl" if kind == "text_completion" else "chatcmpl"
        head = {"id": f"{prefix}-{uuid.uuid4().hex[:24]}", "object": kind, "created": int(time.time()), "model": model}
        return jobs, events, head

    @app.post(IMAGES, response_model=s.ImagesResponse, dependencies=auth, responses=ERROR_RESPONSES)
    async def images(req: s.ImageRequest) -> s.ImagesResponse:
        handle = served.image_model(req.model)
        side = int(handle.config.model.image_size)
        if req.size is not None and req.size != f"{side}x{side}":
            raise APIError(400, f"size: this model makes {side}x{side} images, got {req.size!r}", "size")
        label = image_label(handle, req.prompt)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()

        def sample() -> Any:
            return handle.sample(
                req.n, label, req.seed, steps=req.steps, guidance_scale=req.guidance_scale, temperature=req.temperature
            )

        job = Job(req.model, 0, loop, events, sample=sample)
        submit([job])
        try:
            ev = await events.get()
        finally:
            job.cancel()
        if ev.error is not None and ev.user_error:
            raise user_error(UserError(ev.error))
        if ev.error is not None:
            raise APIError(500, f"generation failed: {ev.error}", None, "server_error")
        return s.ImagesResponse(created=int(time.time()), data=[s.ImageData(b64_json=png_base64(x)) for x in ev.result])

    @app.get("/", include_in_schema=False)
    async def playground() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def image_label(handle: gl.ImageModel, prompt: str) -> int | None:
    """The class a prompt names: a class name (any case) or number; an empty prompt = every class in turn."""
    prompt = prompt.strip()
    if not handle.conditional or not prompt:
        return None
    names = handle.class_names
    lowered = [n.lower() for n in names]
    if prompt.lower() in lowered:
        return lowered.index(prompt.lower())
    if prompt.isascii() and prompt.isdigit() and int(prompt) < len(names):  # not "²" or "٣"
        return int(prompt)
    raise APIError(
        400, f"prompt: {prompt!r} is not a class of this model; one of: {', '.join(names)}", "prompt", "unknown_label"
    )


def png_base64(image: Any) -> str:
    """One (C, H, W) image in [-1, 1] as a base64 PNG."""
    from PIL import Image

    levels = ((image.float().clamp(-1, 1) + 1) * 127.5).round().byte()  # (C, H, W)
    array = levels[0].numpy() if levels.shape[0] == 1 else levels.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()
