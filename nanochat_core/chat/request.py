"""Parse and check a chat completions request (OpenAI's format, nanochat's limits).

Every refusal is a RequestError naming the offending field (`messages[3].content`, `temperature`),
which the server turns into a 400. Roles: user and assistant alternate, starting and ending with
user; one leading `system` message is allowed and, as in nanochat's rendering, is merged into the
first user message (the model has no system role). Fields other than those below (n, stop, ...) are
ignored.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

MAX_MESSAGES = 500
MAX_MESSAGE_CHARS = 8000
MAX_TOTAL_CHARS = 32000
TEMPERATURE_RANGE = (0.0, 2.0)
TOP_K_RANGE = (0, 200)
MAX_TOKENS_RANGE = (1, 4096)


class RequestError(ValueError):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class GenerationDefaults:
    """What a request gets for the fields it leaves out (the server's -t, -k, -m flags)."""
    temperature: float = 0.8
    top_k: int = 50
    max_tokens: int = 512


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict]
    temperature: float
    top_k: int
    max_tokens: int
    stream: bool
    seed: int | None
    model: str | None


def parse_chat_request(body: bytes, defaults: GenerationDefaults = GenerationDefaults()) -> ChatRequest:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"request body is not valid JSON: {exc}", "body") from None
    if not isinstance(data, dict):
        raise RequestError(f"request body must be a JSON object, got {type(data).__name__}", "body")
    messages = _messages(data.get("messages"))
    temperature = _number(data, "temperature", defaults.temperature, *TEMPERATURE_RANGE)
    top_k = _integer(data, "top_k", defaults.top_k, *TOP_K_RANGE)
    max_tokens = _integer(data, "max_tokens", defaults.max_tokens, *MAX_TOKENS_RANGE)
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(f"stream must be true or false, got {stream!r}", "stream")
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RequestError(f"seed must be an integer, got {seed!r}", "seed")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(f"model must be a string, got {model!r}", "model")
    return ChatRequest(messages, temperature, top_k, max_tokens, stream, seed, model)


def _messages(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list of {role, content} objects", "messages")
    if len(messages) > MAX_MESSAGES:
        raise RequestError(f"messages has {len(messages)} entries, at most {MAX_MESSAGES} are allowed", "messages")
    total = 0
    out = []
    for i, message in enumerate(messages):
        field = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RequestError(f"{field} must be an object with role and content", field)
        content = message.get("content")
        if not isinstance(content, str):
            raise RequestError(f"{field}.content must be a string, got {type(content).__name__}", f"{field}.content")
        if len(content) > MAX_MESSAGE_CHARS:
            raise RequestError(f"{field}.content has {len(content)} characters, at most {MAX_MESSAGE_CHARS} are "
                               "allowed", f"{field}.content")
        total += len(content)
        out.append({"role": message.get("role"), "content": content})
    if total > MAX_TOTAL_CHARS:
        raise RequestError(f"messages hold {total} characters in all, at most {MAX_TOTAL_CHARS} are allowed",
                           "messages")
    _check_roles(out)
    return out


def _check_roles(messages: list[dict]) -> None:
    start = 1 if messages[0]["role"] == "system" else 0
    if start and len(messages) == 1:
        raise RequestError("messages holds only a system message: a user message must follow it", "messages")
    for i in range(start, len(messages)):
        role, expected = messages[i]["role"], ("user", "assistant")[(i - start) % 2]
        if role not in ("user", "assistant"):
            where = " (system is only allowed as the first message)" if role == "system" else ""
            raise RequestError(f"messages[{i}].role must be user or assistant, got {role!r}{where}",
                               f"messages[{i}].role")
        if role != expected:
            raise RequestError(f"messages[{i}].role is {role!r} but {expected!r} was expected: roles alternate "
                               "user/assistant, starting with user", f"messages[{i}].role")
    if messages[-1]["role"] != "user":
        last = f"messages[{len(messages) - 1}].role"
        raise RequestError(f"{last} is {messages[-1]['role']!r}: the last message must be from the user", last)


def _number(data: dict, name: str, default: float, low: float, high: float) -> float:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise RequestError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}", name)
    return float(value)


def _integer(data: dict, name: str, default: int, low: int, high: int) -> int:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(f"{name} must be an integer from {low} to {high}, got {value!r}", name)
    return value
