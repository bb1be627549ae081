"""SmolTalk (HuggingFaceTB/smol-smoltalk): general chat conversations, the bulk of the SFT mixture.

Hub: config folder `data`, splits train/test, rows {messages: [{role, content}], ...}. Local: any
`.jsonl` / `.parquet` files under `<task-data>/smoltalk/` whose name contains the split, in the
same messages form (e.g. a chat export like ../shared/data/chat_oasst_sample). Conversations that
break the chat rules (see conversation.py) stop the read with file and row.
"""
from __future__ import annotations

from nanochat_core.tokenizer.conversation import ConversationError, validate_messages
from nanochat_core.tasks.base import Task
from nanochat_core.tasks.rows import TaskFileError, field, read_rows
from nanochat_core.tasks.task_data import HubSplit, resolve_files, task_data_root


class SmolTalk(Task):
    eval_type = "generative"
    name = "SmolTalk"

    def __init__(self, split: str, task_data=None, **slice_args):
        super().__init__(**slice_args)
        if split not in ("train", "test"):
            raise ValueError(f"SmolTalk split must be 'train' or 'test', got {split!r}")
        self.files = resolve_files(task_data_root(task_data), "smoltalk", [f"*{split}*.jsonl", f"*{split}*.parquet"],
                                   HubSplit("HuggingFaceTB/smol-smoltalk", "data", split))
        self.conversations = []
        for path in self.files:
            for i, row in enumerate(read_rows(path)):
                try:
                    messages = validate_messages(field(row, "messages", path, i, list))
                except ConversationError as e:
                    raise TaskFileError(f"{path}: row {i + 1}: {e}") from None
                self.conversations.append({"messages": messages})

    def num_examples(self) -> int:
        return len(self.conversations)

    def get_example(self, index: int) -> dict:
        return self.conversations[index]
