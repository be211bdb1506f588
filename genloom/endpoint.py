"""A client for an OpenAI-compatible endpoint the user names (`--model http://host:port/v1`): genloom's own
server or any other. The agent loop and grounded answers both call one through here.

Two JSON routes (`GET /models`, `POST /chat/completions`) need no HTTP library: `urllib` of the standard
library does it. Every failure (refused connection, timeout, a 4xx/5xx answer, a reply that is not JSON)
becomes one `UserError` line naming the endpoint and the route.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from genloom.errors import UserError

MODELS = "/models"  # OpenAI's routes under the endpoint's base URL (not file paths)
CHAT = "/chat/completions"


class Endpoint:
    """The base URL of an OpenAI-compatible API (ending in /v1) and the key it wants, if any."""

    def __init__(self, url: str, api_key: str | None = None, label: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.label = label  # how errors name the endpoint, e.g. "--model URL" (default: the route's URL)

    def _where(self, route: str) -> str:
        return f"{self.label} ({route})" if self.label else f"{self.url}{route}"

    def call(self, route: str, body: Mapping[str, Any] | None = None, timeout: float = 300) -> dict[str, Any]:
        """POST `body` as JSON to `route` (GET when there is no body); the JSON object answered."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + route, data=data, method="POST" if data else "GET")
        request.add_header("Content-Type", "application/json")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        where = self._where(route)
        try:
            # the user's own endpoint (e.g. genloom serve on 127.0.0.1): a call they asked for, not a download
            with urllib.request.urlopen(request, timeout=timeout) as response:
                reply = json.loads(response.read())
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode("utf-8", "replace")
            raise UserError(f"{where}: the endpoint answered HTTP {e.code} ({detail})") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise UserError(f"{where}: cannot reach an OpenAI-compatible endpoint there ({reason})") from None
        except ValueError:
            raise UserError(f"{where}: the endpoint's answer is not JSON") from None
        if not isinstance(reply, dict):
            raise UserError(f"{where}: the endpoint's answer is not a JSON object")
        return reply

    def first_model(self) -> str:
        """The id of the first model `GET /models` lists: the default when the user names none."""
        listed = self.call(MODELS, timeout=30).get("data") or []
        if not listed or not isinstance(listed[0], dict) or "id" not in listed[0]:
            raise UserError(f"{self._where(MODELS)}: the endpoint lists no models")
        return str(listed[0]["id"])

    def chat(self, body: Mapping[str, Any], timeout: float = 300) -> dict[str, Any]:
        """`POST /chat/completions`; the first choice's message."""
        reply = self.call(CHAT, body, timeout)
        try:
            message = reply["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise UserError(f"{self._where(CHAT)}: the reply is not a chat completion") from None
        if not isinstance(message, dict):
            raise UserError(f"{self._where(CHAT)}: the reply is not a chat completion")
        return message
