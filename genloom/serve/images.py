"""The image route of the server, OpenAI's `POST /v1/images/generations`, for the runs whose modality
names this module (`Modality.routes`): PNGs as base64, a class name or number as the prompt."""

import base64
import io
import time
from typing import Any

from genloom.serve import schemas as s
from genloom.serve.app import ERROR_RESPONSES, IMAGES, APIError, Server


def add_routes(server: Server, handles: dict[str, Any]) -> None:
    """`POST /v1/images/generations` for `handles` (image models by id)."""
    server.offer(handles, IMAGES)

    @server.app.post(IMAGES, response_model=s.ImagesResponse, dependencies=server.auth, responses=ERROR_RESPONSES)
    async def images(req: s.ImageRequest) -> s.ImagesResponse:
        handle = server.handle(req.model, IMAGES, handles)
        side = int(handle.config.model.image_size)
        if req.size is not None and req.size != f"{side}x{side}":
            raise APIError(400, f"size: this model makes {side}x{side} images, got {req.size!r}", "size")
        label = image_label(handle, req.prompt)

        def sample() -> Any:
            return handle.sample(
                req.n, label, req.seed, steps=req.steps, guidance_scale=req.guidance_scale, temperature=req.temperature
            )

        images = await server.run_whole(req.model, sample)
        return s.ImagesResponse(created=int(time.time()), data=[s.ImageData(b64_json=png_base64(x)) for x in images])


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


def png_base64(image: Any) -> str:
    """One (C, H, W) image in [-1, 1] as a base64 PNG."""
    from PIL import Image

    levels = ((image.float().clamp(-1, 1) + 1) * 127.5).round().byte()  # (C, H, W)
    array = levels[0].numpy() if levels.shape[0] == 1 else levels.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()
