"""The image route of the server, OpenAI's `POST /v1/images/generations`, for the runs whose modality
names this module (`Modality.routes`): PNGs as base64 or as URLs the server serves, a class name or
number as the prompt."""

import base64
import io
import secrets
import time
from collections import OrderedDict
from typing import Any

from genloom.serve import schemas as s
from genloom.serve.app import ERROR_RESPONSES, IMAGES, APIError, Server

KEEP_IMAGES = 512  # PNGs kept for response_format "url" (the oldest go first)
KEEP_SECONDS = 3600  # and for at most an hour
FILES = "/files/images"  # where they are served: unguessable names, no API key (an <img> sends none)


def add_routes(server: Server, handles: dict[str, Any]) -> None:
    """`POST /v1/images/generations` for `handles` (image models by id), and `GET /files/images/NAME.png`
    for the images asked for as URLs."""
    from fastapi import Request
    from fastapi.responses import Response

    server.offer(handles, IMAGES)
    kept: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def keep(png: bytes) -> str:
        now = time.time()
        while kept and (len(kept) >= KEEP_IMAGES or next(iter(kept.values()))[0] < now - KEEP_SECONDS):
            kept.popitem(last=False)
        name = secrets.token_urlsafe(16)
        kept[name] = (now, png)
        return name

    @server.app.get(FILES + "/{name}.png", include_in_schema=False)
    async def image_file(name: str) -> Response:
        entry = kept.get(name)
        if entry is None or entry[0] < time.time() - KEEP_SECONDS:
            raise APIError(404, f"no image {name!r} here (images asked for as URLs are kept for an hour)")
        return Response(entry[1], media_type="image/png")

    @server.app.post(IMAGES, response_model=s.ImagesResponse, dependencies=server.auth, responses=ERROR_RESPONSES)
    async def images(req: s.ImageRequest, request: Request) -> s.ImagesResponse:
        handle = server.handle(req.model, IMAGES, handles)
        side = int(handle.config.model.image_size)
        if req.size is not None and req.size != f"{side}x{side}":
            raise APIError(400, f"size: this model makes {side}x{side} images, got {req.size!r}", "size")
        label = image_label(handle, req.prompt)

        def sample() -> Any:
            return handle.sample(
                req.n,
                label,
                req.seed,
                steps=req.steps,
                guidance_scale=req.guidance_scale,
                temperature=req.temperature,
                watermark=req.watermark,
            )

        images = await server.run_whole(req.model, sample)
        pngs = [png_bytes(x) for x in images]
        if req.response_format == "url":
            base = str(request.base_url).rstrip("/")
            data = [s.ImageData(url=f"{base}{FILES}/{keep(png)}.png") for png in pngs]
        else:
            data = [s.ImageData(b64_json=base64.b64encode(png).decode()) for png in pngs]
        return s.ImagesResponse(created=int(time.time()), data=data)


def image_label(handle: Any, prompt: str) -> int | None:
    """The class a prompt names: a class name (any case) or number; an empty prompt = every class in turn."""
    prompt = prompt.strip()
    if not handle.conditional or not prompt:
        return None
    names = handle.class_names
    lowered = [n.lower() for n in names]
    if prompt.lower() in lowered:
        return lowered.index(prompt.lower())
    if prompt.isascii() and prompt.isdigit() and int(prompt) < len(names):
        return int(prompt)
    raise APIError(
        400, f"prompt: {prompt!r} is not a class of this model; one of: {', '.join(names)}", "prompt", "unknown_label"
    )


def png_bytes(image: Any) -> bytes:
    """One (C, H, W) image in [-1, 1] as a PNG file's bytes."""
    from PIL import Image

    levels = ((image.float().clamp(-1, 1) + 1) * 127.5).round().byte()  # (C, H, W)
    array = levels[0].numpy() if levels.shape[0] == 1 else levels.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
