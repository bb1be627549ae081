"""generate_conversations(): the one entry point the CLI and the pipeline call.

Order matters: the knowledge file and the API key are checked before the output is touched or any
request is sent, so a misconfigured run costs nothing and never clobbers an earlier file.
"""
from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from nanochat_core.common.settings import base_dir, load_dotenv_file
from nanochat_core.synthetic.api import ChatClient, GenerationFailed, Interrupted
from nanochat_core.synthetic.diversity import choose
from nanochat_core.synthetic.errors import ApiKeyInvalid, SyntheticDataError
from nanochat_core.synthetic.knowledge import load_knowledge
from nanochat_core.synthetic.offline import offline_conversation
from nanochat_core.synthetic.output import ConversationWriter
from nanochat_core.synthetic.prompt import build_prompt

BACKENDS = ("api", "offline")
DEFAULT_MODEL = "google/gemini-2.5-flash"  # cheap, fast, supports strict structured outputs on OpenRouter
DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
OUTPUT_NAME = "identity_conversations.jsonl"


def default_output(root: Path | None = None) -> Path:
    return (root if root is not None else base_dir()) / OUTPUT_NAME


def resolve_api_key(api_key: str | None = None) -> str:
    if api_key:
        return api_key
    load_dotenv_file()
    key = os.environ.get("OPENROUTER_API_KEY", "").strip()
    if not key:
        raise ApiKeyInvalid(
            "API key invalid: OPENROUTER_API_KEY is not set. Export it (export OPENROUTER_API_KEY=sk-or-...) or add "
            "it to a .env file in the working directory; get one at https://openrouter.ai/keys. "
            "Or use --backend offline, which needs no key."
        )
    return key


def generate_conversations(
    num: int = 1000, output: str | Path | None = None, backend: str = "api", *, workers: int = 4,
    append: bool = False, save_metadata: bool = False, model: str = DEFAULT_MODEL, base_url: str = DEFAULT_BASE_URL,
    timeout: float = 60.0, max_retries: int = 5, knowledge: str | Path | None = None, seed: int = 42,
    root: Path | None = None, api_key: str | None = None, backoff_base: float = 1.0, backoff_cap: float = 30.0,
    stop_event: threading.Event | None = None, on_progress: Callable[[int, int], None] | None = None,
    show_progress: bool = True, handle_sigint: bool = False, log: Callable[[str], None] | None = None,
) -> dict:
    """Make conversations 0..num-1 (those not already in the file when append=True); return stats.

    stop_event: set it to stop early (what is written stays valid; continue later with append=True).
    on_progress(done, total) is called after each conversation finishes (written or failed).
    handle_sigint: turn the first Ctrl-C into a clean stop (the CLI sets it; only works on the main thread).
    Raises SyntheticDataError subclasses for problems that stop the whole run; the exception's
    `.stats` holds what was done before.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if num < 0 or workers < 1 or max_retries < 0 or timeout <= 0:
        raise ValueError("need num >= 0, workers >= 1, max_retries >= 0 and timeout > 0")
    log = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
    kb = load_knowledge(knowledge)
    key = resolve_api_key(api_key) if backend == "api" else None
    output = Path(output) if output is not None else default_output(root)
    stop = stop_event or threading.Event()

    writer = ConversationWriter(output, seed, append)
    todo = [i for i in range(num) if i not in writer.done]
    stats = {
        "output": str(output), "progress_file": str(writer.progress), "backend": backend,
        "model": model if backend == "api" else None, "seed": seed, "knowledge": str(kb.path),
        "knowledge_sha256": kb.sha256, "requested": num, "already_done": num - len(todo), "written": 0,
        "failed": 0, "failed_indices": [], "interrupted": False, "requests": 0, "retries": 0,
        "repaired_partial_line": writer.repaired_bytes > 0,
    }
    if writer.repaired_bytes:
        log(f"removed an unfinished last line ({writer.repaired_bytes} bytes) from {output}")
    bar = tqdm(total=len(todo), disable=not show_progress, desc=f"synthetic ({backend})", unit="conv")
    started = time.perf_counter()

    def finished(index: int, result) -> None:
        """Write one conversation (or count its failure) and report progress; main thread only."""
        if isinstance(result, GenerationFailed):
            stats["failed_indices"].append(index)
            log(f"conversation {index} failed: {result}")
        else:
            messages, choices, attempts = result
            record = {"messages": messages}
            if save_metadata:
                record["metadata"] = {"index": index, "seed": seed, "backend": backend, **choices.metadata()}
                if backend == "api":
                    record["metadata"].update(model=model, attempts=attempts)
            writer.write(index, record)
            stats["written"] += 1
        bar.update(1)
        if on_progress:
            on_progress(stats["written"] + len(stats["failed_indices"]), len(todo))

    fatal = None
    try:
        with _sigint_stops(stop, handle_sigint):
            if backend == "offline":
                # Composing a conversation takes microseconds: workers would only reorder the file.
                for i in todo:
                    if stop.is_set():
                        break
                    messages, choices = offline_conversation(seed, i, kb)
                    finished(i, (messages, choices, 1))
            else:
                client = ChatClient(base_url, key, model, timeout, workers, max_retries, backoff_base, backoff_cap, stop)
                try:
                    _run_api(client, kb, seed, todo, workers, stop, finished)
                finally:
                    stats["requests"], stats["retries"] = client.requests, client.retries
    except SyntheticDataError as e:
        fatal = e
    finally:
        writer.close()
        bar.close()
    seconds = time.perf_counter() - started
    stats["failed"] = len(stats["failed_indices"])
    stats["failed_indices"].sort()
    stats["interrupted"] = fatal is None and stats["written"] + stats["failed"] < len(todo)
    stats["seconds"] = round(seconds, 3)
    stats["conversations_per_second"] = round(stats["written"] / seconds, 3) if seconds > 0 else 0.0
    stats["total_lines"] = writer.existing_lines + stats["written"]
    if fatal is not None:
        fatal.stats = stats
        raise fatal
    return stats


def _run_api(client: ChatClient, kb, seed: int, todo: list[int], workers: int, stop: threading.Event,
             finished: Callable) -> None:
    """`workers` threads take indices from a queue; only this (the calling) thread writes results.

    Our own daemon threads rather than a ThreadPoolExecutor: its threads are joined at interpreter
    exit, so an aborted run (second Ctrl-C) would hang until requests in flight time out. On a stop,
    workers take no new index and retry nothing, and answers already in flight are still written
    (they are paid for); a fatal error (bad key) stops every worker the same way, then is raised.
    """
    jobs: queue.SimpleQueue = queue.SimpleQueue()
    for i in todo:
        jobs.put(i)
    results: queue.SimpleQueue = queue.SimpleQueue()

    def worker() -> None:
        while not stop.is_set():
            try:
                i = jobs.get_nowait()
            except queue.Empty:
                return
            try:
                choices = choose(seed, i, kb.topics)
                messages, attempts = client.generate(build_prompt(kb, choices))
                results.put((i, (messages, choices, attempts)))
            except Interrupted:
                return
            except BaseException as e:  # handed to the main thread, which decides
                if not isinstance(e, GenerationFailed):
                    stop.set()
                results.put((i, e))

    threads = [threading.Thread(target=worker, name=f"synthetic-{k}", daemon=True)
               for k in range(min(workers, len(todo)))]
    for t in threads:
        t.start()
    fatal = None
    try:
        # A thread puts its last result before it ends, so "all ended and queue empty" loses nothing.
        while any(t.is_alive() for t in threads) or not results.empty():
            try:
                i, result = results.get(timeout=0.2)  # short, so Ctrl-C is handled promptly
            except queue.Empty:
                continue
            if isinstance(result, SyntheticDataError):
                fatal = fatal or result
            elif isinstance(result, BaseException) and not isinstance(result, GenerationFailed):
                raise result  # a bug, not an API problem: surface it
            else:
                finished(i, result)
    except BaseException:
        stop.set()  # an abort (second Ctrl-C) or a bug: the workers give up too
        raise
    finally:
        client.close()
    if fatal is not None:
        raise fatal


@contextlib.contextmanager
def _sigint_stops(stop: threading.Event, enabled: bool):
    """First Ctrl-C: stop cleanly (no new requests; answers in flight are still written). Second: abort."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nStopping: waiting for the requests in flight (their answers are kept); continue later with "
              "--append. Ctrl-C again to abort.",
              file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
