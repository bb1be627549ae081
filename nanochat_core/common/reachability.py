"""Can a host be reached from here? One probe of each host, all at once, bounded in time.

The pipeline's `[evaluation] offline = "auto"` asks this once per process before reaching for the
eval bundle (its URL, NANOCHAT_EVAL_BUNDLE_URL honoured) and the Hugging Face Hub (HF_ENDPOINT
honoured); the FineWeb-Edu corpus asks it of the Hub before listing the dataset. Each URL gets one
HTTP HEAD request, no retries, in its own daemon thread; the caller
waits for all of them together at most `budget_s` seconds. Any HTTP answer, whatever its status,
means the host is reachable (a 403 or 404 still proves the network path works); no answer in time,
a refused connection or a name that does not resolve means it is not. A host that accepts the
connection and never answers costs the budget, not more: a thread still waiting is abandoned.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

PROBE_BUDGET_S = 5.0
HUB_URL = "https://huggingface.co"


def hub_url() -> str:
    return os.environ.get("HF_ENDPOINT") or HUB_URL


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


@dataclass(frozen=True)
class Probe:
    url: str
    answered: bool
    detail: str  # "HTTP 200 in 0.31 s", or why there was no answer

    def describe(self) -> str:
        return f"{host_of(self.url)} answered ({self.detail})" if self.answered else \
            f"{host_of(self.url)} did not answer ({self.detail})"


def _head(client, url: str, out: dict) -> None:
    t0 = time.monotonic()
    try:
        response = client.head(url)
        out[url] = Probe(url, True, f"HTTP {response.status_code} in {time.monotonic() - t0:.2f} s")
    except Exception as e:  # any failure to get an answer is the answer: not reachable from here
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        out[url] = Probe(url, False, f"{type(e).__name__}: {first}" if first else type(e).__name__)


def probe(urls: list[str], budget_s: float = PROBE_BUDGET_S) -> dict[str, Probe]:
    """{url: Probe} for every url, within about budget_s seconds in all."""
    deadline = time.monotonic() + budget_s  # everything counts, the import and the TLS set-up too
    import httpx

    # one client shared by the threads (httpx clients are thread-safe): its TLS context is built once
    # (a second on a busy machine); no retries: httpx makes none by default
    client = httpx.Client(timeout=budget_s, follow_redirects=False)
    results: dict[str, Probe] = {}
    threads = [threading.Thread(target=_head, args=(client, url, results), daemon=True, name=f"probe {url}")
               for url in dict.fromkeys(urls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if not any(t.is_alive() for t in threads):
        client.close()  # else a thread still holds it; it ends with its own timeout
    return {url: results.get(url) or Probe(url, False, f"no answer within {budget_s:g} s")
            for url in dict.fromkeys(urls)}
