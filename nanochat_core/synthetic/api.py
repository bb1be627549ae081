"""One OpenAI-compatible chat-completions client shared by the worker threads, with retries.

Retried (exponential backoff with jitter, Retry-After honoured): 429, 408, 5xx, timeouts and
connection errors, and answers that do not parse or break the conversation rules, since at
temperature 1 the next sample is usually fine. Not retried: 401/403 (a bad key stays bad; the whole
run stops) and other 4xx (a bad model name or an unsupported option fails every request alike).
"""
from __future__ import annotations

import email.utils
import json
import random
import threading
import time

from nanochat_core.tokenizer.conversation import ConversationError, validate_messages
from nanochat_core.synthetic.errors import ApiKeyInvalid, RequestRejected
from nanochat_core.synthetic.prompt import RESPONSE_FORMAT

RETRY_STATUS = {408, 429}
MAX_RETRY_AFTER = 600.0  # a server asking for more than this would stall the run; cap it


class Interrupted(Exception):
    """The run is stopping (Ctrl-C or a fatal error elsewhere); this conversation is abandoned."""


class GenerationFailed(Exception):
    """Every attempt for one conversation failed; the run goes on without it."""


class ChatClient:
    def __init__(self, base_url: str, api_key: str, model: str, timeout: float, workers: int,
                 max_retries: int, backoff_base: float, backoff_cap: float, stop: threading.Event):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stop = stop
        import httpx  # here, not at module load: commands that only read paths (status) skip its import

        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
            headers={"Authorization": f"Bearer {api_key}", "X-Title": "nanochat pipeline"},
        )
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0

    def close(self) -> None:
        self.http.close()

    def generate(self, prompt: list[dict]) -> tuple[list[dict], int]:
        """Return (validated messages, attempts used) or raise GenerationFailed / a fatal error."""
        payload = {"model": self.model, "messages": prompt, "temperature": 1.0, "response_format": RESPONSE_FORMAT}
        import httpx

        rng = random.Random()  # jitter only; it need not be reproducible
        last, retry_after = "no attempt made", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                with self._lock:
                    self.retries += 1
                if self.stop.wait(self._delay(attempt, retry_after, rng)):  # wakes at once on stop
                    raise Interrupted()
            if self.stop.is_set():
                raise Interrupted()
            retry_after = None
            try:
                with self._lock:
                    self.requests += 1
                resp = self.http.post(self.url, json=payload)
            except httpx.TimeoutException:
                last = "request timed out"
                continue
            except httpx.TransportError as e:
                last = f"connection error: {e}"
                continue
            if resp.status_code in (401, 403):
                self.stop.set()  # right here, so no other worker starts another doomed request
                raise ApiKeyInvalid(
                    f"API key invalid: {self.url} answered {resp.status_code} ({_api_message(resp)}). "
                    "Check OPENROUTER_API_KEY (environment or .env in the working directory); verify it at "
                    "https://openrouter.ai/keys and retry with a fresh key."
                )
            if resp.status_code in RETRY_STATUS or resp.status_code >= 500:
                retry_after = parse_retry_after(resp.headers.get("retry-after"))
                last = f"HTTP {resp.status_code} ({_api_message(resp)})"
                continue
            if resp.status_code >= 400:
                self.stop.set()
                raise RequestRejected(
                    f"{self.url} rejected the request with HTTP {resp.status_code} ({_api_message(resp)}); "
                    f"check --model {self.model!r} (it must support structured outputs) and --base-url"
                )
            try:
                return parse_answer(resp), attempt + 1
            except ValueError as e:
                last = f"unusable answer: {e}"
        raise GenerationFailed(f"gave up after {self.max_retries + 1} attempts; last: {last}")

    def _delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        # Jitter spreads the workers out so they do not hit a rate limit again in lockstep.
        backoff = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.0)
        if retry_after is not None:
            return max(min(retry_after, MAX_RETRY_AFTER), backoff)
        return backoff


def parse_answer(resp: httpx.Response) -> list[dict]:
    """Response -> validated messages; ValueError says what was wrong (then the request is retried)."""
    try:
        body = resp.json()
    except ValueError:
        raise ValueError("response body is not JSON") from None
    if isinstance(body, dict) and "error" in body:  # OpenRouter can report provider errors with a 200
        raise ValueError(f"API error in body: {_error_text(body['error'])}")
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ValueError("no choices[0].message.content in the response") from None
    if not isinstance(content, str):
        raise ValueError("message content is not a string (refusal?)")
    try:
        data = json.loads(_strip_fence(content))
    except ValueError:
        raise ValueError("message content is not valid JSON") from None
    if not isinstance(data, dict) or "messages" not in data:
        raise ValueError("JSON has no 'messages' field")
    try:
        return validate_messages(data["messages"])
    except ConversationError as e:
        raise ValueError(f"invalid conversation: {e}") from None


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (a number, or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _strip_fence(text: str) -> str:
    # Some models wrap JSON in a ```json fence even in structured-output mode.
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        t = t.rsplit("```", 1)[0]
    return t


def _api_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200] or resp.reason_phrase
    if isinstance(body, dict) and "error" in body:
        return _error_text(body["error"])
    return resp.reason_phrase


def _error_text(err) -> str:
    return str(err.get("message", err))[:200] if isinstance(err, dict) else str(err)[:200]
