"""chat_web as a real uvicorn server (subprocess) on a tiny checkpoint: the OpenAI answer shape, streamed
chunks that add up to the non-streamed answer (which is the engine's), every bad input a 400 naming its
field, concurrent requests that do not disturb each other, /health, incremental UTF-8 decoding, and
the chat page driven in headless Chromium over the DevTools protocol."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from chat_fixtures import STEP, TAG, write_chat_checkpoint
from helpers import free_port, wait_for_http

REPO = Path(__file__).resolve().parents[1]
MAX_TOKENS = 24  # the server's -m: what requests without max_tokens get


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat_web_base")
    write_chat_checkpoint(root)
    return root


@pytest.fixture(scope="module")
def server(base, tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("chat_web_log") / "server.log"
    log = open(log_path, "w+")
    env = dict(os.environ, NANOCHAT_BASE_DIR=str(base), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "nanochat_core.cli.chat_web", "--port", str(port), "-t", "0",
                             "-m", str(MAX_TOKENS), "--device-type", "cpu"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/health", proc, timeout=180, log=log_path)
    yield url
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def chat_model(base):
    """The served checkpoint loaded in the test process, to compute the answers the server must give."""
    old = os.environ.get("NANOCHAT_BASE_DIR")
    os.environ["NANOCHAT_BASE_DIR"] = str(base)
    try:
        from nanochat_core.chat.loaded_model import load_chat_model

        return load_chat_model("sft")
    finally:
        if old is None:
            del os.environ["NANOCHAT_BASE_DIR"]
        else:
            os.environ["NANOCHAT_BASE_DIR"] = old


def engine_answer(chat_model, messages, max_tokens=MAX_TOKENS):
    """(greedy answer text, prompt length, completion length, finish reason) straight from the engine."""
    from nanochat_core.chat.loaded_model import conversation_prompt, fit_context
    from nanochat_core.chat.tools import complete_rows

    prompt = fit_context(conversation_prompt(chat_model.tokenizer, messages), chat_model.context)
    (row,) = complete_rows(chat_model.model, chat_model.tokenizer, prompt, max_tokens, temperature=0.0)
    return chat_model.tokenizer.decode(row.tokens), len(prompt), len(row.tokens), row.finish_reason


def post(url, body, **kw):
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=60, **kw)


def stream_events(url, body) -> list:
    events = []
    with httpx.stream("POST", url + "/v1/chat/completions", json=dict(body, stream=True), timeout=60) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: "):]
                events.append(data if data == "[DONE]" else json.loads(data))
            else:
                assert line == "", line  # nothing but data lines and the blank lines between events
    return events


CONVERSATIONS = [
    [{"role": "user", "content": "the cat sees"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}],
    [{"role": "user", "content": "a dog"}, {"role": "assistant", "content": "helps the farmer"},
     {"role": "user", "content": "where?"}],
]


def test_health(server):
    health = httpx.get(server + "/health").json()
    assert health["status"] == "ok"
    assert health["model"] == {"source": "sft", "tag": TAG, "step": STEP}
    assert health["device"] == "cpu"


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_non_streamed_answer_is_the_engines(server, chat_model, messages):
    resp = post(server, {"model": "anything", "messages": messages, "temperature": 0})
    assert resp.status_code == 200
    body = resp.json()
    text, n_prompt, n_completion, finish = engine_answer(chat_model, messages)
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == TAG and abs(body["created"] - time.time()) < 60
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": text},
                                "finish_reason": finish}]
    assert body["usage"] == {"prompt_tokens": n_prompt, "completion_tokens": n_completion,
                             "total_tokens": n_prompt + n_completion}


def test_max_tokens_and_finish_reason_length(server, chat_model):
    messages = CONVERSATIONS[0]
    body = post(server, {"messages": messages, "max_tokens": 3, "temperature": 0}).json()
    text, _, n, finish = engine_answer(chat_model, messages, max_tokens=3)
    assert body["choices"][0]["message"]["content"] == text
    assert body["usage"]["completion_tokens"] == n <= 3
    assert body["choices"][0]["finish_reason"] == finish == ("length" if n == 3 else "stop")


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_streamed_chunks_add_up_to_the_non_streamed_answer(server, messages):
    request = {"messages": messages, "temperature": 0.0}
    whole = post(server, request).json()
    events = stream_events(server, request)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    final = chunks[-1]["choices"][0]
    assert final["delta"] == {} and final["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert chunks[-1]["usage"] == whole["usage"]
    middle = [c["choices"][0] for c in chunks[1:-1]]
    assert all(m["finish_reason"] is None and set(m["delta"]) == {"content"} for m in middle)
    assert "".join(m["delta"]["content"] for m in middle) == whole["choices"][0]["message"]["content"]
    assert len(middle) > 1  # streamed piece by piece, not in one block


def test_sampling_is_reproducible_by_seed(server):
    request = {"messages": CONVERSATIONS[0], "temperature": 1.0, "top_k": 50, "seed": 11}
    a, b = (post(server, request).json()["choices"][0]["message"]["content"] for _ in range(2))
    c = post(server, dict(request, seed=12)).json()["choices"][0]["message"]["content"]
    assert a == b and a != c


def test_concurrent_requests_do_not_disturb_each_other(server):
    requests = [{"messages": m, "temperature": 0, "stream": s} for m in CONVERSATIONS for s in (False, True)]

    def answer(req):
        if req["stream"]:
            return "".join(e["choices"][0]["delta"].get("content", "") for e in stream_events(server, req)[:-1])
        return post(server, req).json()["choices"][0]["message"]["content"]

    alone = [answer(r) for r in requests]
    together: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i, r=r: together.__setitem__(i, answer(r)))
               for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [together[i] for i in range(len(requests))] == alone


def test_health_answers_during_generation_and_a_disconnect_frees_the_model(server):
    request = {"messages": CONVERSATIONS[0], "temperature": 0, "max_tokens": 2048, "stream": True}
    t0 = time.monotonic()
    events = stream_events(server, request)
    full = time.monotonic() - t0
    assert events[-2]["choices"][0]["finish_reason"] == "length"  # this prompt never stops on its own
    with httpx.stream("POST", server + "/v1/chat/completions", json=request, timeout=60) as resp:
        lines = resp.iter_lines()  # kept referenced: a closed line iterator would close the connection
        for line in lines:
            if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                break  # generating now
        t1 = time.monotonic()
        health = httpx.get(server + "/health", timeout=full).json()
        assert health["busy"] is True and time.monotonic() - t1 < full / 2  # the event loop is not blocked
        lines.close()
    t2 = time.monotonic()  # the client has gone: the worker stops at its next token and releases the lock
    while httpx.get(server + "/health").json()["busy"]:
        assert time.monotonic() - t2 < full / 2, "the generation went on after its client disconnected"
        time.sleep(0.01)


def user(content="hi"):
    return {"role": "user", "content": content}


def assistant(content="ok"):
    return {"role": "assistant", "content": content}


BAD_INPUTS = [
    (b"{not json", "body"),
    (b"[1, 2]", "body"),
    ({}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [user(), assistant()] * 250 + [user()]}, "messages"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [user(), assistant(), user("x" * 8001)]}, "messages[2].content"),
    ({"messages": [user("x" * 7000), assistant("x" * 7000), user("x" * 7000), assistant("x" * 7000),
                   user("x" * 7000)]}, "messages"),
    ({"messages": [{"role": "tool", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [user(), {"role": "system", "content": "late"}, user()]}, "messages[1].role"),
    ({"messages": [{"role": "system", "content": "alone"}]}, "messages"),
    ({"messages": [user(), user()]}, "messages[1].role"),
    ({"messages": [user(), assistant()]}, "messages[1].role"),
    ({"messages": [user()], "temperature": 2.5}, "temperature"),
    ({"messages": [user()], "temperature": -0.1}, "temperature"),
    ({"messages": [user()], "temperature": "hot"}, "temperature"),
    ({"messages": [user()], "top_k": 201}, "top_k"),
    ({"messages": [user()], "top_k": -1}, "top_k"),
    ({"messages": [user()], "top_k": 1.5}, "top_k"),
    ({"messages": [user()], "max_tokens": 0}, "max_tokens"),
    ({"messages": [user()], "max_tokens": 4097}, "max_tokens"),
    ({"messages": [user()], "stream": "yes"}, "stream"),
    ({"messages": [user()], "seed": "abc"}, "seed"),
]


@pytest.mark.parametrize("body, field", BAD_INPUTS, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD_INPUTS)])
def test_bad_input_is_a_400_naming_the_field(server, body, field):
    if isinstance(body, bytes):
        resp = httpx.post(server + "/v1/chat/completions", content=body, timeout=30,
                          headers={"content-type": "application/json"})
    else:
        resp = post(server, body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == field
    assert (field if field != "body" else "JSON") in error["message"]


def test_limits_themselves_are_accepted_and_long_prompts_fit_the_context(server, chat_model):
    text = ("the cat sees a dog. " * 400)[:8000]
    messages = [user(text), assistant(text), user(text), assistant(text[:-1]), user("v")]
    resp = post(server, {"messages": messages, "temperature": 2, "top_k": 200, "max_tokens": 1})
    assert resp.status_code == 200
    # thousands of tokens in, but the model sees its training context: bos + the most recent tokens
    assert resp.json()["usage"]["prompt_tokens"] == chat_model.context
    resp = post(server, {"messages": messages, "temperature": 0, "max_tokens": 5})
    assert resp.json()["choices"][0]["message"]["content"] == engine_answer(chat_model, messages, 5)[0]


def test_token_stream_decodes_multibyte_utf8_across_tokens(chat_model):
    from nanochat_core.chat.token_stream import TokenTextStream

    tok = chat_model.tokenizer
    text = "naïve café, 日本語 and 🙂!"
    ids = tok.encode(text)
    stream = TokenTextStream(tok)
    pieces = [stream.push(i) for i in ids] + [stream.flush()]
    assert "".join(pieces) == text == tok.decode(ids)
    assert "" in pieces[:-1]  # a character split over tokens waited for its last byte...
    assert not any("\ufffd" in p for p in pieces)  # ...instead of printing replacement characters
    # a dangling partial character at the end becomes U+FFFD, exactly as decode() does
    cut = ids[:-1] if len(tok.token_raw_bytes(ids[-1])) == 1 else ids
    partial = tok.encode("🙂")[:2]
    stream = TokenTextStream(tok)
    assert "".join([stream.push(i) for i in cut + partial] + [stream.flush()]) == tok.decode(cut + partial)


# ---------------------------------------------------------------- the page, in headless Chromium

class DevTools:
    """A minimal Chrome DevTools Protocol client over the page's websocket."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while not self.js(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied {expression}")
            time.sleep(0.1)

    def click(self, selector: str):
        x, y = self.js(f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
                       " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


@pytest.fixture
def browser(server, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): the browser check is skipped")
    port = free_port()
    proc = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", f"--remote-debugging-port={port}", server + "/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        page = None
        while page is None:
            try:
                targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                page = next((t for t in targets if t["type"] == "page" and t["url"].startswith(server)), None)
            except httpx.TransportError:
                pass
            if page is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("chromium did not open the chat page")
                time.sleep(0.2)
        from websockets.sync.client import connect

        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
            yield DevTools(ws)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_chat_page_streams_an_answer_in_chromium(server, browser):
    page = browser
    page.wait_for("document.readyState === 'complete' && !!document.getElementById('send')")
    page.wait_for("document.getElementById('model').textContent.includes('step')")  # /health reached the page
    # count the text pieces added to answer bubbles: one per streamed delta when tokens show as they arrive
    page.js("window.pieces = 0; new MutationObserver(rs => { for (const r of rs) for (const n of r.addedNodes)"
            " if (n.nodeType === Node.TEXT_NODE && n.parentElement.classList.contains('assistant')) window.pieces++; })"
            ".observe(document.getElementById('log'), {childList: true, subtree: true}); true")
    conversation = []
    for message in ("the cat sees", "a dog helps"):
        page.js("document.getElementById('input').focus()")
        page.call("Input.insertText", text=message)
        page.click("#send")
        page.wait_for(f"document.querySelectorAll('.msg.assistant').length === {len(conversation) // 2 + 1}"
                      " && document.body.dataset.state === 'idle'")
        conversation.append(user(message))
        # the server's default temperature is 0 (-t 0), so the page must show exactly the API's answer
        expected = post(server, {"messages": conversation}).json()["choices"][0]["message"]["content"]
        deltas = [e for e in stream_events(server, {"messages": conversation})[1:-2]]
        shown = page.js("[...document.querySelectorAll('.msg.assistant')].pop().textContent")
        assert shown == expected
        assert page.js("window.pieces") == len(deltas) > 1
        page.js("window.pieces = 0")
        conversation.append(assistant(expected))
    assert page.js("[...document.querySelectorAll('.msg.user')].map(e => e.textContent)") == ["the cat sees",
                                                                                            "a dog helps"]
    assert page.js("document.getElementById('input').value") == ""
