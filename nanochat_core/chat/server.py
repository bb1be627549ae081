"""The chat web app: an OpenAI-compatible chat completions endpoint, a health check and a chat page.

    POST /v1/chat/completions   OpenAI's request and answer formats; "stream": true sends server-sent
                                chat.completion.chunk events, then `data: [DONE]`
    GET  /health                status, model (source, tag, step), device
    GET  /                      a small chat page that streams from the endpoint above

One model serves every request: generation runs in a worker thread (the event loop keeps answering
other requests meanwhile) and a lock lets one generation use the model at a time. Answers are
sampled with the calculator tool. A client that goes away mid-stream stops its generation. A prompt
longer than the model's training context keeps its first token (bos) and its most recent ones.
"""
from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import uuid
from importlib import resources

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route

from nanochat_core.chat.loaded_model import ChatModel, conversation_prompt, fit_context
from nanochat_core.chat.request import ChatRequest, GenerationDefaults, RequestError, parse_chat_request


class ChatService:
    """The model behind the endpoints and the lock that serialises its use."""

    def __init__(self, chat_model: ChatModel, defaults: GenerationDefaults):
        self.cm, self.defaults = chat_model, defaults
        self.lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self.cm.tag

    def generate(self, req: ChatRequest, on_text, cancelled: threading.Event) -> dict:
        """Blocking: sample the answer, calling on_text(piece) as text decodes; returns the usage
        counts and the finish reason. Runs in a worker thread."""
        from nanochat_core.chat.tools import ToolTokens, generate_with_tools
        from nanochat_core.chat.token_stream import TokenTextStream

        tok = self.cm.tokenizer
        prompt = fit_context(conversation_prompt(tok, req.messages), self.cm.context)
        seed = req.seed if req.seed is not None else secrets.randbits(31)
        stops = ToolTokens.of(tok).stops
        stream = TokenTextStream(tok)
        completion_tokens, finish_reason = 0, "length"
        with self.lock:
            for column, _ in generate_with_tools(self.cm.model, tok, prompt, req.max_tokens, req.temperature,
                                                 req.top_k, seed):
                if cancelled.is_set():
                    break
                if column[0] in stops:
                    finish_reason = "stop"
                    break
                completion_tokens += 1
                piece = stream.push(column[0])
                if piece:
                    on_text(piece)
        tail = stream.flush()
        if tail:
            on_text(tail)
        return {"finish_reason": finish_reason,
                "usage": {"prompt_tokens": len(prompt), "completion_tokens": completion_tokens,
                          "total_tokens": len(prompt) + completion_tokens}}


def _error(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param}}, status_code=status)


def _sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def build_app(service: ChatService) -> Starlette:
    page = resources.files("nanochat_core.chat").joinpath("page.html").read_text(encoding="utf-8")

    async def index(request: Request):
        return HTMLResponse(page)

    async def health(request: Request):
        cm = service.cm
        return JSONResponse({"status": "ok", "model": {"source": cm.source, "tag": cm.tag, "step": cm.step},
                             "device": str(cm.device), "busy": service.lock.locked()})

    async def chat_completions(request: Request):
        try:
            req = parse_chat_request(await request.body(), service.defaults)
        except RequestError as exc:
            return _error(400, str(exc), exc.param)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if req.stream:
            return StreamingResponse(_stream(service, req, completion_id, created), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        pieces: list[str] = []
        try:
            result = await run_in_threadpool(service.generate, req, pieces.append, threading.Event())
        except Exception as exc:  # a generation failure is the server's fault, not the request's
            return _error(500, f"generation failed: {exc}", kind="server_error")
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": created, "model": service.model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(pieces)},
                         "finish_reason": result["finish_reason"]}],
            "usage": result["usage"],
        })

    return Starlette(routes=[
        Route("/", index, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ])


async def _stream(service: ChatService, req: ChatRequest, completion_id: str, created: int):
    """Server-sent events: a role delta, content deltas as text decodes, a finish chunk, [DONE]."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancelled = threading.Event()

    def send(kind, value) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop closed (server shutting down): nobody is listening
            cancelled.set()

    def work() -> None:
        try:
            send("done", service.generate(req, lambda piece: send("text", piece), cancelled))
        except Exception as exc:
            send("error", exc)

    def chunk(delta: dict, finish_reason=None, **extra) -> str:
        return _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                     "model": service.model_name,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra})

    loop.run_in_executor(None, work)
    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            kind, value = await queue.get()
            if kind == "text":
                yield chunk({"content": value})
            elif kind == "done":
                yield chunk({}, value["finish_reason"], usage=value["usage"])
                break
            else:
                yield _sse({"error": {"message": f"generation failed: {value}", "type": "server_error"}})
                break
        yield "data: [DONE]\n\n"
    finally:
        cancelled.set()  # a client that disconnected stops its generation at the next token
