"""`python -m nanochat_core.cli.chat_cli`: talk to a model in the terminal (nanochat's scripts/chat_cli.py).

With -p/--prompt, answer that one message and exit; otherwise chat turn by turn (the conversation is
kept; `clear` starts a new one; `quit`, `exit` or end of input ends). Answers stream as they are
generated, sampled with the calculator tool. Ctrl-C stops the current answer; at the prompt it exits.
"""
from __future__ import annotations

import argparse
import sys

from nanochat_core.cli.arg_types import add_checkpoint_args

BANNER = "Chat with {source} model {tag} (step {step}). 'clear' starts a new conversation, 'quit' or 'exit' ends."


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nanochat_core.cli.chat_cli", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_checkpoint_args(p, "checkpoint family to load")
    p.add_argument("-p", "--prompt", type=str, default="", help="answer this one message and exit")
    p.add_argument("-t", "--temperature", type=float, default=0.6, help="sampling temperature (0 = greedy)")
    p.add_argument("-k", "--top-k", type=int, default=50, help="sample from the k most likely tokens (0 = all)")
    p.add_argument("--max-tokens", type=int, default=256, help="most tokens per answer")
    p.add_argument("--seed", type=int, default=42, help="sampling seed (turn n uses seed + n)")
    return p


class Chat:
    """The conversation as token ids (so tool calls keep their special tokens from turn to turn)."""

    def __init__(self, chat_model, args):
        self.cm, self.args = chat_model, args
        tok = chat_model.tokenizer
        self.user_start, self.user_end = tok.encode_special("<|user_start|>"), tok.encode_special("<|user_end|>")
        self.assistant_start = tok.encode_special("<|assistant_start|>")
        self.assistant_end = tok.encode_special("<|assistant_end|>")
        self.clear()

    def clear(self) -> None:
        self.tokens = [self.cm.tokenizer.get_bos_token_id()]
        self.turn = 0

    def answer(self, message: str, out) -> None:
        """Stream the assistant's answer to `message` to `out`; the turn joins the conversation."""
        from nanochat_core.chat.loaded_model import fit_context
        from nanochat_core.chat.tools import ToolTokens, generate_with_tools
        from nanochat_core.chat.token_stream import TokenTextStream

        tok, a = self.cm.tokenizer, self.args
        self.tokens += [self.user_start, *tok.encode(message), self.user_end, self.assistant_start]
        stops = ToolTokens.of(tok).stops
        stream = TokenTextStream(tok)
        try:
            prompt = fit_context(self.tokens, self.cm.context)  # a long chat forgets its oldest turns
            for column, _ in generate_with_tools(self.cm.model, tok, prompt, a.max_tokens, a.temperature,
                                                 a.top_k, a.seed + self.turn):
                if column[0] in stops:
                    break
                self.tokens.append(column[0])
                out.write(stream.push(column[0]))
                out.flush()
        except KeyboardInterrupt:
            out.write(" [stopped]")
        out.write(stream.flush() + "\n")
        out.flush()
        self.tokens.append(self.assistant_end)  # close the turn even when it ran out of tokens
        self.turn += 1


def interactive(chat: Chat, out) -> None:
    cm = chat.cm
    print(BANNER.format(source=cm.source, tag=cm.tag, step=cm.step), file=out, flush=True)
    while True:
        try:
            line = input("\nUser: ")
        except (EOFError, KeyboardInterrupt):
            print(file=out)
            return
        message = line.strip()
        if message.lower() in ("quit", "exit"):
            return
        if message.lower() == "clear":
            chat.clear()
            print("Conversation cleared.", file=out, flush=True)
            continue
        if not message:
            continue
        out.write("\nAssistant: ")
        chat.answer(message, out)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.temperature < 0:
        parser.error(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_k < 0:
        parser.error(f"--top-k must be >= 0 (0 = all tokens), got {args.top_k}")
    if args.max_tokens < 1:
        parser.error(f"--max-tokens must be >= 1, got {args.max_tokens}")

    from nanochat_core.chat.loaded_model import load_chat_model
    from nanochat_core.common.device import resolve_device_type

    try:
        device_type = resolve_device_type(args.device_type)
        device = "cuda:0" if device_type == "cuda" else device_type
        chat = Chat(load_chat_model(args.source, args.model_tag, args.step, device=device), args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"chat_cli: error: {exc}", file=sys.stderr, flush=True)
        return 1
    if args.prompt:
        chat.answer(args.prompt, sys.stdout)
    else:
        interactive(chat, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
