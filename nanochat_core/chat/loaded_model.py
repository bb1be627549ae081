"""Load the model a chat command talks to: a base or SFT checkpoint plus the tokenizer.

nanochat's `-i/--source` picks the checkpoint family; a missing folder is an error that names the
folder and the command that fills it, so a first-time user knows what to run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nanochat_core.common import settings

SOURCES = {
    # source: (checkpoints root, the command that writes checkpoints there)
    "base": (settings.base_checkpoints_dir, "python -m nanochat_core.cli.base_train"),
    "sft": (settings.chatsft_checkpoints_dir, "python -m nanochat_core.cli.chat_sft"),
    "rl": (settings.chatrl_checkpoints_dir, "python -m nanochat_core.cli.chat_rl"),
}


@dataclass
class ChatModel:
    model: object
    tokenizer: object
    source: str
    tag: str
    step: int
    device: object
    meta: dict
    root: Path

    @property
    def context(self) -> int:
        """The longest rows the model trained on (an SFT run's may exceed its base's sequence_len):
        prompts are cropped to it (fit_context)."""
        return max(self.model.config.sequence_len, int(self.meta.get("max_seq_len") or 0))


def load_chat_model(source: str = "sft", model_tag: str | None = None, step: int | None = None,
                    device="cpu") -> ChatModel:
    from nanochat_core.tokenizer.bpe import get_tokenizer
    from nanochat_core.model.checkpoint import find_largest_model_tag, load_model

    if source not in SOURCES:
        raise ValueError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
    root_of, command = SOURCES[source]
    root = Path(root_of())
    hint = f"train one first: `{command}`"
    if not root.is_dir() or not any(p.is_dir() for p in root.iterdir()):
        raise FileNotFoundError(f"no {source} checkpoints: the folder {root} is missing or empty ({hint})")
    tag = model_tag or find_largest_model_tag(root)
    if not (root / tag).is_dir():
        have = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir()))
        raise FileNotFoundError(f"no {source} checkpoint folder {root / tag} (tags there: {have}; or {hint})")
    tokenizer = get_tokenizer()
    model, meta = load_model(tag, step, device=device, root=root)
    vocab = meta["model_config"]["vocab_size"]
    if vocab != tokenizer.get_vocab_size():
        raise ValueError(f"checkpoint {root / tag} has vocab_size {vocab} but the tokenizer in "
                         f"{settings.tokenizer_dir()} has {tokenizer.get_vocab_size()}: they were not trained together")
    return ChatModel(model, tokenizer, source, tag, int(meta["step"]), device, meta, root)


def conversation_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Prompt ids for the assistant's next turn: the rendered conversation + <|assistant_start|>."""
    from nanochat_core.tokenizer.chat_render import render_conversation

    ids, _ = render_conversation(tokenizer, {"messages": messages}, max_tokens=10**9)
    return ids + [tokenizer.encode_special("<|assistant_start|>")]


def fit_context(prompt: list[int], context: int) -> list[int]:
    """At most `context` tokens: the first (bos) and the most recent ones. A model has seen nothing
    longer than its training context, and attention over a longer prompt costs memory and time
    quadratically, so the oldest turns make way."""
    if len(prompt) <= context:
        return prompt
    return prompt[:1] + prompt[len(prompt) - (context - 1):]
