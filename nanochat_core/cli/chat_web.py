"""`python -m nanochat_core.cli.chat_web`: serve a model over HTTP (nanochat's scripts/chat_web.py).

Open http://127.0.0.1:8000/ for a chat page, or point any OpenAI client at http://127.0.0.1:8000/v1
(`POST /v1/chat/completions`, streaming or not). `GET /health` reports the model and device.
-t, -k and -m are the defaults for requests that leave temperature, top_k or max_tokens out.
"""
from __future__ import annotations

import argparse
import sys

from nanochat_core.cli.arg_types import add_checkpoint_args
from nanochat_core.chat.request import MAX_TOKENS_RANGE, TEMPERATURE_RANGE, TOP_K_RANGE


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nanochat_core.cli.chat_web", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", type=str, default="127.0.0.1", help="address to listen on (0.0.0.0 = every interface)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    add_checkpoint_args(p, "checkpoint family to load")
    p.add_argument("-t", "--temperature", type=float, default=0.8, help="default sampling temperature")
    p.add_argument("-k", "--top-k", type=int, default=50, help="default top-k (0 = all tokens)")
    p.add_argument("-m", "--max-tokens", type=int, default=512, help="default most tokens per answer")
    return p


def check_defaults(args, parser: argparse.ArgumentParser) -> None:
    """The defaults must pass the same limits as a request's own values."""
    for flag, value, (low, high) in (("--temperature", args.temperature, TEMPERATURE_RANGE),
                                     ("--top-k", args.top_k, TOP_K_RANGE),
                                     ("--max-tokens", args.max_tokens, MAX_TOKENS_RANGE)):
        if not low <= value <= high:
            parser.error(f"{flag} must be from {low:g} to {high:g}, got {value:g}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be from 0 to 65535, got {args.port}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_defaults(args, parser)

    import uvicorn

    from nanochat_core.chat.loaded_model import load_chat_model
    from nanochat_core.chat.request import GenerationDefaults
    from nanochat_core.chat.server import ChatService, build_app
    from nanochat_core.common.device import resolve_device_type

    try:
        device_type = resolve_device_type(args.device_type)
        device = "cuda:0" if device_type == "cuda" else device_type
        chat_model = load_chat_model(args.source, args.model_tag, args.step, device=device)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"chat_web: error: {exc}", file=sys.stderr, flush=True)
        return 1
    service = ChatService(chat_model, GenerationDefaults(args.temperature, args.top_k, args.max_tokens))
    print(f"Serving {chat_model.source} model {chat_model.tag} (step {chat_model.step}) on {device}: "
          f"http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(build_app(service), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
