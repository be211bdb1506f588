"""The text routes of the server, OpenAI's completions and chat completions (streaming as SSE), for
the runs whose modality names this module (`Modality.routes`); decoding through the scheduler's
continuous batching (genloom/serve/scheduler.py).

Fill-in-the-middle (docs/code.md), for runs trained with `data.fim_rate > 0`: `/v1/completions` with
OpenAI's `suffix` field answers the middle between `prompt` and `suffix`, and `POST /infill` takes
llama.cpp's request shape (`input_prefix`, `input_suffix`, `n_predict`, `stream`), which editor plug-ins
speak. A `suffix` for a run trained without FIM is a 400 naming the field."""

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from genloom.chat import stop_sequences
from genloom.errors import UserError
from genloom.generation import GenerationConfig, TokenLogprob
from genloom.serve import schemas as s
from genloom.serve import tools
from genloom.serve.app import (
    CHAT_COMPLETIONS,
    COMPLETIONS,
    ERROR_RESPONSES,
    APIError,
    Server,
    error_body,
    sse,
    user_error,
)
from genloom.serve.scheduler import Event, Job

INFILL = "/infill"  # llama.cpp's route (not under /v1); the API key guards it too (serve/middleware.py)
INFILL_DEFAULT_TOKENS = 128  # a /v1/completions `suffix` request without max_tokens asks for this much room

# ---- request → generation configs ----------------------------------------------------------------


def generation_configs(
    req: s.CompletionRequest | s.ChatCompletionRequest,
    lm: Any,
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
    if prompt_len >= context and (max_tokens is None or max_tokens > 0):
        raise APIError(
            400,
            f"{prompt_param}: {prompt_len} tokens fill the model's context of {context} tokens, leaving none to "
            "generate; shorten it",
            prompt_param,
            "context_length_exceeded",
        )
    # like `generate` with a long request: as many tokens as the context holds, then finish_reason "length"
    max_tokens = context - prompt_len if max_tokens is None else min(max_tokens, context - prompt_len)
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
                block_verbatim=req.block_verbatim,
                watermark=req.watermark,
            )
            cfg = lm.responsible(cfg)  # the run's training-text index and watermark key, when asked for
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


def _fills_in(lm: Any) -> bool:
    """Whether a served language model was trained for fill-in-the-middle."""
    try:
        lm.fim_tokenizer()
    except UserError:
        return False
    return True


def add_routes(server: Server, handles: dict[str, Any]) -> None:
    """`POST /v1/completions`, `POST /v1/chat/completions` and `POST /infill` for `handles` (language models by
    id)."""
    from fastapi.responses import StreamingResponse

    for name, handle in handles.items():
        server.scheduler.add_model(name, handle)
    server.offer(handles, COMPLETIONS, CHAT_COMPLETIONS)
    server.offer({n: h for n, h in handles.items() if _fills_in(h)}, INFILL)

    def lookup(name: str, path: str) -> Any:
        return server.handle(name, path, handles)

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
                    out: list[str] = []
                    for ev in merge(ready):
                        if ev.error is not None:
                            yield sse(error_body(400 if ev.user_error else 500, f"generation failed: {ev.error}"))
                            return
                        tokens[ev.index] = max(tokens[ev.index], ev.completion_tokens)
                        done += ev.finish_reason is not None
                        if ev.text or ev.finish_reason is not None or ev.logprobs:
                            made = chunk(ev)  # one chunk, or several (tool call deltas)
                            out.extend(sse(c) for c in (made if isinstance(made, list) else [made]))
                    yield "".join(out)
                if tail is not None:
                    yield sse({**tail, "choices": [], "usage": usage(prompts, sum(tokens)).model_dump()})
                yield sse("[DONE]")
            finally:
                for job in jobs:
                    job.cancel()  # the client went away (or we are done): free the rows

        return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    def encode(lm: Any, text: str, param: str) -> list[int]:
        try:
            return lm.prompt_ids(text)
        except UserError as e:
            raise APIError(400, f"{param}: {e}", param, "unencodable_prompt") from None

    # ---- routes ----

    # each server-sent event as OpenAPI 3.2 describes one (`data`, `event`, `id`, `retry`): `data` holds a JSON chunk
    sse_event = {
        "type": "object",
        "properties": {"data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"}},
    }
    stream_doc: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {"schema": sse_event}}}}
    text_route: dict[str, Any] = {"dependencies": server.auth, "responses": {**ERROR_RESPONSES, **stream_doc}}

    @server.app.post(COMPLETIONS, response_model=s.CompletionResponse, **text_route)
    async def completions(req: s.CompletionRequest) -> Any:
        lm = lookup(req.model, COMPLETIONS)
        if req.echo:
            raise APIError(400, "echo: not supported by genloom; the prompt is not repeated in the output", "echo")
        texts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not texts:
            raise APIError(400, "prompt: expected a string or a non-empty list of strings", "prompt")
        if req.suffix is not None:  # fill in the middle between each prompt and the suffix
            room = INFILL_DEFAULT_TOKENS if req.max_tokens is None else req.max_tokens
            try:
                prompts = [lm.infill_ids(t, req.suffix, room, param="suffix") for t in texts]
                banned = lm.fim_banned()
            except UserError as e:
                raise user_error(e, "suffix") from None
        else:
            prompts = [encode(lm, t, "prompt") for t in texts]
            banned = ()
        configs = generation_configs(req, lm, max(len(p) for p in prompts), req.max_tokens, top_logprobs=req.logprobs)
        if banned:
            configs = [dataclasses.replace(c, banned_tokens=(*c.banned_tokens, *banned)) for c in configs]
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

    @server.app.post(CHAT_COMPLETIONS, response_model=s.ChatCompletionResponse, **text_route)
    async def chat_completions(req: s.ChatCompletionRequest) -> Any:
        lm = lookup(req.model, CHAT_COMPLETIONS)
        stops = stop_sequences(lm.chat_template)
        plan = tools.plan(req, lm, stops)  # tools, tool_choice, response_format: checked, rendered, compiled
        try:
            text = lm.chat_prompt(plan.messages)
        except UserError as e:
            raise APIError(400, str(e), "messages") from None
        prompts = [encode(lm, text, "messages")]
        top = (req.top_logprobs or 0) if req.logprobs else None
        if req.top_logprobs and not req.logprobs:
            raise APIError(400, "top_logprobs: needs logprobs: true", "top_logprobs")
        max_tokens = req.max_completion_tokens or req.max_tokens
        configs = generation_configs(req, lm, len(prompts[0]), max_tokens, stops, top)
        if plan.grammar is not None:
            configs = [dataclasses.replace(c, grammar=plan.grammar) for c in configs]
        jobs, events, head = start(req.model, prompts, configs, "chat.completion.chunk", req.stream)
        if req.stream:
            started: set[int] = set()
            streams: dict[int, tools.ToolStream] = {}

            def chunk(ev: Event) -> list[dict[str, Any]]:
                lp = chat_logprobs(ev.logprobs).model_dump() if req.logprobs else None
                if plan.tools:  # the text becomes content or tool_calls deltas as it is read
                    ts = streams.setdefault(ev.index, tools.ToolStream())
                    deltas = ts.feed(ev.text) + (ts.finish() if ev.finish_reason else [])
                else:
                    deltas = [{"content": ev.text}] if ev.text else []
                if ev.index not in started:  # the first chunk of a choice names the role
                    started.add(ev.index)
                    deltas = [{"role": "assistant", **(deltas[0] if deltas else {"content": ""})}, *deltas[1:]]
                reason = finish(ev.finish_reason) if ev.finish_reason else None
                if reason and ev.index in streams and streams[ev.index].made:
                    reason = "tool_calls"
                deltas = deltas or [{}]
                return [
                    {
                        **head,
                        "choices": [
                            {
                                "index": ev.index,
                                "delta": d,
                                "logprobs": lp if k == 0 else None,
                                "finish_reason": reason if k == len(deltas) - 1 else None,
                            }
                        ],
                    }
                    for k, d in enumerate(deltas)
                ]

            tail = head if req.stream_options and req.stream_options.include_usage else None
            return stream(jobs, events, chunk, tail, prompts)
        results = await gather(jobs, events)
        choices = []
        for i, (text, reason, lps, _) in enumerate(results):
            content, calls = tools.answer(text, plan.tools)
            message = s.AssistantMessage(content=content, tool_calls=tools.call_dicts(calls) if calls else None)  # type: ignore[arg-type]
            choices.append(
                s.ChatChoice(
                    index=i,
                    message=message,
                    finish_reason="tool_calls" if calls else reason,  # type: ignore[arg-type]
                    logprobs=chat_logprobs(lps) if req.logprobs else None,
                )
            )
        return s.ChatCompletionResponse(
            id=head["id"],
            created=head["created"],
            model=req.model,
            choices=choices,
            usage=usage(prompts, sum(r[3] for r in results)),
        )

    def infill_model(name: str | None) -> tuple[str, Any]:
        """The model a /infill request names, or the only fill-in-the-middle model served."""
        if name is not None:
            return name, lookup(name, INFILL)
        fim = [n for n, h in handles.items() if _fills_in(h)]
        if len(fim) != 1:
            served = ", ".join(fim) if fim else "none"
            raise APIError(400, f"model: name the model to fill in with (fill-in-the-middle models: {served})", "model")
        return fim[0], handles[fim[0]]

    @server.app.post(INFILL, response_model=s.InfillResponse, **text_route)
    async def infill(req: s.InfillRequest) -> Any:
        """The middle between `input_prefix` and `input_suffix`, as llama.cpp's /infill answers it."""
        name, lm = infill_model(req.model)
        context = int(lm.model.config.block_size)
        extra = "".join(f"# {x.filename}\n{x.text}\n" if x.filename else f"{x.text}\n" for x in req.input_extra)
        room = INFILL_DEFAULT_TOKENS if req.n_predict < 0 else req.n_predict
        try:
            ids, truncated = lm.fit_infill(
                extra + req.input_prefix, req.input_suffix, room, "psm", "input_suffix", req.prompt
            )
            cfg = GenerationConfig(
                max_new_tokens=context - len(ids) if req.n_predict < 0 else req.n_predict,
                temperature=req.temperature,
                top_k=req.top_k or None,
                top_p=req.top_p if req.top_p < 1.0 else None,
                min_p=req.min_p or None,
                repetition_penalty=req.repeat_penalty,
                stop=tuple(req.stop),
                seed=None if req.seed < 0 else req.seed,
                banned_tokens=lm.fim_banned(),
            )
        except UserError as e:
            raise user_error(e, "input_suffix") from None
        jobs, events, _ = start(name, [ids], [cfg], "infill", req.stream)

        def last(reason: str | None, tokens: int) -> dict[str, Any]:
            kinds = {"eos": "eos", "stop": "word"}
            return {
                "stop": True,
                "model": name,
                "tokens_predicted": tokens,
                "tokens_evaluated": len(ids),
                "stop_type": kinds.get(reason or "", "limit"),
                "truncated": truncated,
            }

        if req.stream:

            async def body() -> AsyncIterator[str]:
                try:
                    while True:
                        ev = await events.get()
                        if ev.error is not None:
                            yield sse(error_body(400 if ev.user_error else 500, f"generation failed: {ev.error}"))
                            return
                        if ev.text:
                            yield sse({"content": ev.text, "stop": False})
                        if ev.finish_reason is not None:
                            yield sse({"content": "", **last(ev.finish_reason, ev.completion_tokens)})
                            return
                finally:
                    for job in jobs:
                        job.cancel()

            return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        text, reason, tokens = "", None, 0
        try:
            while reason is None:
                ev = await events.get()
                if ev.error is not None:
                    raise APIError(
                        400 if ev.user_error else 500, f"generation failed: {ev.error}", None, "generation_failed"
                    )
                text += ev.text
                tokens = max(tokens, ev.completion_tokens)
                reason = ev.finish_reason
        finally:
            for job in jobs:
                job.cancel()
        return {"content": text, **last(reason, tokens)}

    def start(
        model: str, prompts: list[list[int]], configs: list[GenerationConfig], kind: str, stream: bool
    ) -> tuple[list[Job], asyncio.Queue[Event], dict[str, Any]]:
        """Check the prompts against the model, queue one job per choice; returns the jobs, their
        event queue and the fields every response and chunk starts with."""
        for ids in prompts:
            try:
                server.scheduler.batchers[model].check(ids, configs[0])
            except UserError as e:
                raise user_error(e, "prompt") from None
        jobs, events = text_jobs(model, prompts, configs, stream)
        server.submit(jobs)
        prefix = "cmpl" if kind == "text_completion" else "chatcmpl"
        head = {"id": f"{prefix}-{uuid.uuid4().hex[:24]}", "object": kind, "created": int(time.time()), "model": model}
        return jobs, events, head
