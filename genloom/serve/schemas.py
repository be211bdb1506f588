"""Request and response bodies of the OpenAI-compatible API, as pydantic models.

Field names, ranges and shapes follow OpenAI's API reference for `/v1/completions`,
`/v1/chat/completions`, `/v1/images/generations` and `/v1/models`; genloom's extras (`top_k`,
`min_p`, `repetition_penalty`) are ordinary optional fields (the `openai` client sends them through
`extra_body`). Fields of OpenAI's API that would change the answer and that genloom does not do
(`best_of`, `functions`, ...) are refused with a 422 naming the field; any other field a client
sends routinely (`store`, `metadata`, `service_tier`, ...) is ignored with a note in the server log,
as OpenAI-compatible servers do. These models also make the OpenAPI document at `/openapi.json`.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_N = 8  # choices per request
MAX_STOP = 4  # stop strings per request (OpenAI's limit)
MAX_PROMPTS = 16  # prompts in one /v1/completions request
MAX_PROMPT_CHARS = 100_000  # one prompt or message, before tokenization (the context limit comes after)
MAX_IMAGES = 16  # images per /v1/images/generations request
MAX_SAMPLES = 256  # samples per /v1/samples request (one file holds them all)


PromptText = Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]
StopList = Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=MAX_STOP)]


# OpenAI request fields whose effect genloom does not implement: answering without it would mislead
REFUSED = frozenset(
    {
        "best_of",
        "tools",  # the chat endpoint has these four (serve/tools.py); /v1/completions refuses them
        "tool_choice",
        "response_format",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "audio",
        "modalities",
        "prediction",
        "web_search_options",
        "reasoning_effort",
    }
)
log = logging.getLogger("genloom.serve")


class Strict(BaseModel):
    """A request body: its fields, the refused ones (422), and anything else ignored with a log note."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _ignore_unknown(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
        ignored = sorted(k for k in data if k not in known and k not in REFUSED)
        if ignored:
            log.info("%s: ignored the fields %s (not used by genloom)", cls.__name__, ", ".join(map(str, ignored)))
            data = {k: v for k, v in data.items() if k not in ignored}
        return data


class StreamOptions(Strict):
    include_usage: bool = False  # a last chunk with the `usage` of the whole request


class SamplingFields(Strict):
    """The decoding fields both text endpoints share."""

    model: str = Field(min_length=1, max_length=200)
    temperature: float = Field(1.0, ge=0.0, le=2.0)  # 0 is greedy
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=MAX_N)  # choices per prompt; choice i samples with seed + i
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Annotated[str, Field(max_length=100)] | StopList | None = None
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = Field(None, max_length=1024)  # token id (as a string) → -100..100
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    user: str | None = Field(None, max_length=256)  # accepted, unused
    # genloom extras
    top_k: int | None = Field(None, ge=1)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, gt=0.0, le=10.0)
    block_verbatim: int = Field(0, ge=0, le=100_000)  # never copy this many training characters (docs/responsible.md)
    watermark: bool = False  # mark the text with the run's watermark (`genloom detect` reads it)


class CompletionRequest(SamplingFields):
    prompt: PromptText | Annotated[list[PromptText], Field(max_length=MAX_PROMPTS)]
    suffix: PromptText | None = None  # the code after the gap: the answer is the middle (fill-in-the-middle runs)
    max_tokens: int | None = Field(16, ge=0)  # OpenAI's default for completions
    logprobs: int | None = Field(None, ge=0, le=5)  # log-probabilities of the chosen and this many top tokens
    echo: bool = False  # not supported (400 when true)


class InputExtra(Strict):
    filename: str = Field("", max_length=1000)
    text: PromptText = ""


class InfillRequest(Strict):
    """`POST /infill` in the shape of llama.cpp's server (its README, "POST /infill"), which editor plug-ins
    speak: the code before and after the cursor, and the decoding fields with llama.cpp's names and defaults."""

    model: str | None = Field(None, min_length=1, max_length=200)  # optional when one model fills in code
    input_prefix: PromptText = ""  # the code before the cursor
    input_suffix: PromptText = ""  # the code after it
    input_extra: Annotated[list[InputExtra], Field(max_length=64)] = []  # other files, put before the prefix
    prompt: PromptText = ""  # the start of the middle, already typed (it follows <fim_middle>)
    n_predict: int = Field(-1, ge=-1)  # tokens to generate at most (-1: as many as the context holds)
    stream: bool = False  # Server-Sent Events: {"content": piece, "stop": false} ..., then a last "stop": true
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_k: int = Field(40, ge=0)  # 0: off
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    min_p: float = Field(0.05, ge=0.0, le=1.0)
    repeat_penalty: float = Field(1.0, ge=0.001, le=1000.0)
    seed: int = Field(-1, ge=-1, le=2**63 - 1)  # -1: random
    stop: StopList = []


class InfillResponse(BaseModel):
    content: str  # the middle
    stop: bool = True
    model: str
    tokens_predicted: int
    tokens_evaluated: int  # the prompt's tokens
    stop_type: Literal["eos", "word", "limit"]  # end of the middle, a stop string, or n_predict / the context
    truncated: bool  # the code around the gap was cut to fit the context


class ChatMessage(Strict):
    role: Literal["system", "user", "assistant", "developer", "tool"]  # "developer" is rendered as "system"
    content: PromptText | Annotated[list[dict[str, Any]], Field(max_length=64)] | None  # text or "text" parts
    name: str | None = Field(None, max_length=64)  # accepted, unused
    tool_calls: Annotated[list[dict[str, Any]], Field(max_length=64)] | None = None  # an assistant turn's calls
    tool_call_id: str | None = Field(None, max_length=200)  # the call a tool message answers

    @model_validator(mode="before")
    @classmethod
    def _calls_need_no_content(cls, data: Any) -> Any:
        """An assistant turn that only made calls may leave `content` out (OpenAI's rule); others need it."""
        if isinstance(data, dict) and "content" not in data and data.get("tool_calls"):
            return {**data, "content": None}
        return data


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1)  # default: the rest of the context
    max_completion_tokens: int | None = Field(None, ge=1)  # the newer name of max_tokens
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    # tools and structured output (checked in serve/tools.py: a 400 names the field)
    tools: Annotated[list[dict[str, Any]], Field(max_length=128)] | None = None
    tool_choice: str | dict[str, Any] | None = None  # "auto", "none", "required" or {"type": "function", ...}
    parallel_tool_calls: bool | None = None  # default: several calls in one answer are allowed
    response_format: dict[str, Any] | None = None  # {"type": "text" | "json_object" | "json_schema", ...}


class ImageRequest(Strict):
    model: str = Field(min_length=1, max_length=200)
    prompt: str = Field("", max_length=1000)  # a class name or number for class-conditional runs; else ignored
    n: int = Field(1, ge=1, le=MAX_IMAGES)
    response_format: Literal["b64_json", "url"] = "b64_json"  # url: a link the server serves for an hour
    size: str | None = Field(None, max_length=20)  # must be the run's own size ("28x28") when given
    seed: int | None = Field(None, ge=0, le=2**63 - 1)  # genloom extras from here on
    steps: int | None = Field(None, ge=1, le=1000)  # diffusion: sampling steps
    guidance_scale: float | None = Field(None, ge=0.0, le=20.0)  # class-conditional diffusion
    watermark: bool = False  # mark every image with the run's invisible watermark (docs/responsible.md)
    temperature: float | None = Field(None, gt=0.0, le=2.0)  # flow and PixelCNN
    user: str | None = Field(None, max_length=256)


class SamplesRequest(Strict):
    """genloom's `POST /v1/samples`: any run's samples, in its modality's file format."""

    model: str = Field(min_length=1, max_length=200)
    n: int = Field(1, ge=1, le=MAX_SAMPLES)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    options: dict[str, Any] = Field(default_factory=dict)  # the modality's sampling options (label, steps, ...)


# ---- responses ----------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    message: str
    type: str  # invalid_request_error, authentication_error, not_found_error, rate_limit_error, server_error
    param: str | None = None  # the request field at fault
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprobOut]


class FunctionCallOut(BaseModel):
    name: str
    arguments: str  # JSON text


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallOut


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCallOut] | None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length", "tool_calls"]


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "genloom"
    kind: str  # genloom extra: which endpoints serve it ("text", "image", ...: its modality's kind)
    family: str  # genloom extra
    context_length: int | None = None  # text runs: prompt + max_tokens must fit in it
    labels: list[str] | None = None  # class-conditional image runs: what `prompt` may name


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ImageData(BaseModel):
    b64_json: str | None = None  # a PNG (response_format b64_json)
    url: str | None = None  # where the server serves the PNG (response_format url)


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    models: int
    running: int  # requests being decoded now
    waiting: int  # requests in the queue


class SamplesResponse(BaseModel):
    created: int
    model: str
    media_type: str  # of the file: image/png, text/plain, text/csv, ...
    count: int  # samples in it
    b64: str  # the file, base64
