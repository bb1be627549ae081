"""A local stand-in for an OpenAI-compatible chat-completions API, for tests and benchmarks.

It speaks real HTTP on 127.0.0.1 (ThreadingHTTPServer, one thread per request, so concurrency is
real), records every request, and answers from a script of behaviours -- valid answers, malformed
bodies, schema violations, 429 with Retry-After, 500, 401, slow answers -- so the client's retry and
error paths run against the wire, not against mocks. It generates nothing useful: never point a
real run at it.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BEHAVIOURS = ("ok", "malformed_json", "not_json_content", "schema_violation", "rate_limit", "server_error",
              "unauthorized", "bad_request", "slow")


class LocalChatServer:
    """with LocalChatServer(script=["rate_limit", "ok"]) as srv: ... srv.base_url, srv.requests"""

    def __init__(self, script=(), default: str = "ok", latency: float = 0.0, slow_seconds: float = 2.0,
                 retry_after: str = "0", api_key: str | None = None):
        unknown = [b for b in (*script, default) if b not in BEHAVIOURS]
        if unknown:
            raise ValueError(f"unknown behaviours {unknown}; known: {BEHAVIOURS}")
        self.script, self.default = list(script), default
        self.latency, self.slow_seconds, self.retry_after = latency, slow_seconds, retry_after
        self.api_key = api_key  # when set, any other bearer token gets a 401
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._served = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        # A short poll interval makes shutdown() return quickly (the default waits up to 0.5 s).
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "LocalChatServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next(self, headers: dict, body) -> tuple[str, int]:
        with self._lock:
            self.requests.append({"headers": headers, "body": body})
            n = self._served
            self._served += 1
            behaviour = self.script.pop(0) if self.script else self.default
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            behaviour = "unauthorized"
        return behaviour, n

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real APIs do

            def log_message(self, *args):  # keep test output quiet
                pass

            def setup(self):
                super().setup()
                # Headers and body go out in two writes; with Nagle on, the second waits for the
                # client's delayed ACK (~40 ms), which would swamp the latency being simulated.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                behaviour, n = server._next(headers, body)
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if server.latency:
                    time.sleep(server.latency)
                if behaviour == "slow":
                    time.sleep(server.slow_seconds)
                    behaviour = "ok"
                if behaviour == "ok":
                    conv = {"messages": [{"role": "user", "content": f"question {n}?"},
                                         {"role": "assistant", "content": f"answer {n}."}]}
                    return self._send(200, _completion(json.dumps(conv)))
                if behaviour == "malformed_json":
                    return self._send_raw(200, b'{"choices": [ this is not json', "application/json")
                if behaviour == "not_json_content":
                    return self._send(200, _completion("Sure! Here is a conversation: user: hi assistant: hello"))
                if behaviour == "schema_violation":
                    conv = {"messages": [{"role": "assistant", "content": "I speak first"},
                                         {"role": "user", "content": "wrong order"}]}
                    return self._send(200, _completion(json.dumps(conv)))
                if behaviour == "rate_limit":
                    return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": server.retry_after})
                if behaviour == "server_error":
                    return self._send(500, {"error": {"message": "upstream provider error"}})
                if behaviour == "unauthorized":
                    return self._send(401, {"error": {"message": "No auth credentials found"}})
                return self._send(400, {"error": {"message": "model does not support response_format"}})

            def _send(self, status: int, obj, extra: dict | None = None):
                self._send_raw(status, json.dumps(obj).encode(), "application/json", extra)

            def _send_raw(self, status: int, data: bytes, ctype: str, extra: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to do

        return Handler


def _completion(content: str) -> dict:
    return {"id": "local-1", "object": "chat.completion", "model": "local",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
