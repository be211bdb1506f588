"""Embeddings and document indexes over HTTP: `POST /v1/embeddings` (OpenAI's shape) for the served
masked LMs (bert runs, Hugging Face BERT and sentence-transformers directories), and retrieval and grounded
answers over the indexes given with `genloom serve --index NAME=DIR`:
`POST /v1/indexes/{name}/search` and `POST /v1/indexes/{name}/answer`.

`POST /v1/indexes/{name}/chat/completions` is OpenAI's chat completions grounded on the index: an `openai`
client whose `base_url` is `http://HOST:PORT/v1/indexes/NAME` asks a served chat model, which answers from
the index's chunks with [n] citations, checked sentence by sentence.

Access control: `--index-key NAME=KEY` binds an index to a key. A request that carries an index key sees
only that key's indexes; the server's own `--api-key` sees every index; with no key, only indexes bound to
none. Asking for an index one may not see — whether or not it exists — is the same 403, so a key cannot
probe for the names of other teams' indexes.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from typing import Any, Literal

import numpy as np
from fastapi import Request  # this module is imported only when a server is made
from pydantic import BaseModel, Field

from genloom.errors import UserError
from genloom.serve import schemas as s
from genloom.serve.app import ERROR_RESPONSES, V1, APIError, Server, sse, user_error
from genloom.serve.middleware import key_matches

EMBEDDINGS = f"{V1}/embeddings"
INDEXES = f"{V1}/indexes"
MAX_INPUTS = 256  # texts in one /v1/embeddings request
MAX_TEXT = 20_000  # characters of one text or question


# ---- bodies ----


class EmbeddingRequest(s.Strict):
    model: str
    input: str | list[str] = Field(..., min_length=1)  # one text or up to MAX_INPUTS texts (token ids are refused)
    encoding_format: Literal["float", "base64"] = "float"  # base64: little-endian float32 bytes, as OpenAI
    dimensions: int | None = Field(None, ge=1)  # accepted only when equal to the model's width
    user: str | None = None


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class SearchRequest(s.Strict):
    query: str = Field(..., min_length=1, max_length=MAX_TEXT)
    k: int = Field(10, ge=1, le=100)  # hits
    mode: Literal["hybrid", "bm25", "dense"] | None = None  # default: hybrid when the index has vectors
    one_per_doc: bool = False  # each document's best chunk only


class SearchHit(BaseModel):
    doc_id: str
    path: str
    span: str
    heading: list[str]
    score: float
    page: int | None = None
    text: str


class SearchResponse(BaseModel):
    object: Literal["search.result"] = "search.result"
    index: str
    hits: list[SearchHit]


class AnswerRequest(s.Strict):
    question: str = Field(..., min_length=1, max_length=MAX_TEXT)
    k: int = Field(5, ge=1, le=50)  # chunks retrieved
    model: str | None = None  # a served text model for a generative answer; None: extractive
    strict: bool = False  # drop sentences the support check flags
    max_tokens: int = Field(200, ge=1, le=2048)  # generative answers


class CitationOut(BaseModel):
    n: int
    doc_id: str
    path: str
    span: str
    heading: list[str]
    text: str
    quotes: list[str]


class SentenceOut(BaseModel):
    text: str
    cites: list[int]
    coverage: float
    supported: bool
    reason: str


class AnswerResponse(BaseModel):
    object: Literal["answer"] = "answer"
    index: str
    question: str
    text: str
    mode: str
    found: bool
    citations: list[CitationOut]
    sentences: list[SentenceOut]
    removed: list[str]
    flagged: int


class GroundedChatRequest(s.Strict):
    """OpenAI's chat body; the last user message is the question, answered from the index's chunks."""

    model: str = Field(min_length=1, max_length=200)  # a served chat model
    messages: list[s.ChatMessage] = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1, le=2048)
    max_completion_tokens: int | None = Field(None, ge=1, le=2048)
    stream: bool = False  # SSE deltas, one per checked sentence: the answer is checked whole, then sent
    k: int = Field(5, ge=1, le=50)  # genloom's: chunks retrieved
    strict: bool = False  # genloom's: drop flagged sentences
    temperature: float | None = None  # accepted; grounded answers are greedy
    seed: int | None = None  # accepted; greedy answers need none


class GroundedMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class GroundedChoice(BaseModel):
    index: int = 0
    message: GroundedMessage
    finish_reason: Literal["stop"] = "stop"


class GroundedChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[GroundedChoice]
    usage: EmbeddingUsage | None = None
    citations: list[CitationOut]  # genloom's: what each [n] in the content stands for
    sentences: list[SentenceOut]  # genloom's: the support check of each sentence


# ---- embeddings (a masked-text modality's routes) ----


def add_routes(server: Server, handles: dict[str, Any]) -> None:
    """`POST /v1/embeddings` for the served masked LMs."""
    from starlette.concurrency import run_in_threadpool

    @server.app.post(EMBEDDINGS, response_model=EmbeddingResponse, dependencies=server.auth, responses=ERROR_RESPONSES)
    async def embeddings(req: EmbeddingRequest) -> EmbeddingResponse:
        """Sentence embeddings in OpenAI's shape (the `openai` client's `embeddings.create`)."""
        model = server.handle(req.model, EMBEDDINGS, handles)
        texts = [req.input] if isinstance(req.input, str) else req.input
        if len(texts) > MAX_INPUTS or any(len(t) > MAX_TEXT for t in texts):
            raise APIError(400, f"input: at most {MAX_INPUTS} texts of {MAX_TEXT} characters each", "input")
        if any(not t.strip() for t in texts):
            raise APIError(400, "input: every text must be non-empty", "input")
        width = int(model.model.config.n_embd)
        if req.dimensions is not None and req.dimensions != width:
            raise APIError(400, f"dimensions: this model gives {width}-dimensional vectors", "dimensions")

        def work() -> tuple[np.ndarray, int]:
            vectors = model.embed(texts).float().numpy()
            tokens = sum(len(model._framed(t, truncate=True)) for t in texts)
            return vectors, tokens

        try:
            vectors, tokens = await run_in_threadpool(work)
        except UserError as e:
            raise user_error(e, "input") from None
        data = [
            Embedding(
                index=i,
                embedding=base64.b64encode(v.astype("<f4").tobytes()).decode()
                if req.encoding_format == "base64"
                else v.tolist(),
            )
            for i, v in enumerate(vectors)
        ]
        return EmbeddingResponse(
            data=data, model=req.model, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
        )

    server.offer(handles, EMBEDDINGS)


# ---- indexes ----


def add_index_routes(server: Server, indexes: dict[str, Any], keys: dict[str, list[str]], api_key: str | None) -> None:
    """Search and answer routes over `indexes` (name → opened `gl.Index`); `keys`: name → its keys."""
    from starlette.concurrency import run_in_threadpool

    def visible(request: Request, name: str) -> Any:
        """The index `name` if the request's key may see it; 403 alike for hidden and missing ones."""
        authorization = request.headers.get("authorization", "")
        admin = api_key is not None and key_matches(authorization, api_key)
        if admin:
            if name in indexes:
                return indexes[name]
            raise APIError(404, f"index {name!r} does not exist", "index", "index_not_found")
        allowed = {n for n, ks in keys.items() if any(key_matches(authorization, k) for k in ks)}
        if not allowed and api_key is None:  # no key at all: the indexes bound to none
            allowed = {n for n in indexes if not keys.get(n)}
        if name in allowed and name in indexes:
            return indexes[name]
        raise APIError(403, f"this API key has no access to an index named {name!r}", "index", "index_forbidden")

    @server.app.post(
        INDEXES + "/{name}/search",
        response_model=SearchResponse,
        responses={**ERROR_RESPONSES, 403: ERROR_RESPONSES[401]},
    )
    async def search(name: str, req: SearchRequest, request: Request) -> SearchResponse:
        """The best chunks of index `name` for a query: path, span, heading, score and text."""
        index = visible(request, name)
        try:
            hits = await run_in_threadpool(index.search, req.query, req.k, req.mode, req.one_per_doc)
        except UserError as e:
            raise user_error(e, "query") from None
        return SearchResponse(index=name, hits=[SearchHit(**h.to_json()) for h in hits])

    @server.app.post(
        INDEXES + "/{name}/answer",
        response_model=AnswerResponse,
        responses={**ERROR_RESPONSES, 403: ERROR_RESPONSES[401]},
    )
    async def answer(name: str, req: AnswerRequest, request: Request) -> AnswerResponse:
        """A grounded answer with [n] citations: extractive, or generated by a served text model and checked."""
        index = visible(request, name)
        options = {"k": req.k, "strict": req.strict, "max_new_tokens": req.max_tokens}
        if req.model is None:
            try:
                result = await run_in_threadpool(lambda: index.ask(req.question, **options))
            except UserError as e:
                raise user_error(e, "question") from None
        else:
            handle = server.served.handles.get(req.model)
            if handle is None or not hasattr(handle, "chat"):
                raise APIError(400, f"model {req.model!r} is not a served chat model; GET /v1/models", "model")
            result = await server.run_whole(req.model, lambda: index.ask(req.question, model=handle, **options))
        body = result.to_json()
        return AnswerResponse(index=name, **body)

    @server.app.post(
        INDEXES + "/{name}/chat/completions",
        response_model=GroundedChatResponse,
        responses={**ERROR_RESPONSES, 403: ERROR_RESPONSES[401]},
    )
    async def grounded_chat(name: str, req: GroundedChatRequest, request: Request) -> Any:
        """Chat completions grounded on index `name`: an OpenAI client with base_url `.../v1/indexes/NAME`
        gets an answer from the documents, with `citations` and the support check beside the message."""
        index = visible(request, name)
        questions = [m.content for m in req.messages if m.role == "user" and isinstance(m.content, str)]
        if not questions or not questions[-1].strip():
            raise APIError(400, "messages: the last user message (a text) is the question; none was given", "messages")
        handle = server.served.handles.get(req.model)
        if handle is None or not hasattr(handle, "chat"):
            raise APIError(400, f"model {req.model!r} is not a served chat model; GET /v1/models", "model")
        options = {
            "k": req.k,
            "strict": req.strict,
            "max_new_tokens": req.max_completion_tokens or req.max_tokens or 200,
        }
        result = await server.run_whole(req.model, lambda: index.ask(questions[-1], model=handle, **options))
        body = result.to_json()
        reply = GroundedChatResponse(
            id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
            created=int(time.time()),
            model=req.model,
            choices=[GroundedChoice(message=GroundedMessage(content=result.text))],
            citations=[CitationOut(**c) for c in body["citations"]],
            sentences=[SentenceOut(**x) for x in body["sentences"]],
        )
        return streamed(reply) if req.stream else reply

    def streamed(reply: GroundedChatResponse) -> Any:
        """The checked answer as OpenAI's `chat.completion.chunk` events: the role, one delta per sentence
        (the support check needs the whole answer, so the first delta comes once it is checked), then a last
        chunk with the finish reason, `citations` and `sentences`, then [DONE]."""
        from fastapi.responses import StreamingResponse

        head = {"id": reply.id, "object": "chat.completion.chunk", "created": reply.created, "model": reply.model}
        text = reply.choices[0].message.content
        pieces = re.findall(r"\S.*?(?:[.!?](?=\s|$)|$)\s*", text, flags=re.S)
        if "".join(pieces) != text:  # leading spaces: send it whole rather than change a character
            pieces = [text]

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            return sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in pieces]
        tail = {
            "citations": [c.model_dump() for c in reply.citations],
            "sentences": [x.model_dump() for x in reply.sentences],
        }
        events += [chunk({}, "stop", **tail), sse("[DONE]")]
        return StreamingResponse(iter(events), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    server.app.state.indexes = indexes


def open_indexes(specs: dict[str, str], keys: dict[str, list[str]]) -> dict[str, Any]:
    """Open each `name → directory` (a bad one is a `UserError` before the server starts)."""
    import genloom as gl

    for name, bound in keys.items():
        if name not in specs:
            raise UserError(f"--index-key {name}=...: no --index named {name!r}")
        if any(not k.strip() for k in bound):
            raise UserError(f"--index-key {name}=: the key is empty; give a key")
    opened = {}
    for name, path in specs.items():
        opened[name] = gl.Index(path)
        if opened[name].manifest.get("embedder"):
            _ = opened[name].embedder  # load it now: the first request should not wait for it
    return opened
