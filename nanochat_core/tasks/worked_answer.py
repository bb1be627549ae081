"""Word problems answered with worked steps and a final `#### N` (GSM8K's form, and our generated Arithmetic).

One base for both, so the answer check lives in one place: the reference is a worked solution whose
calculator annotations `<<48/2=24>>` become tool calls in the assistant message (a python part
`48/2` and its output `24`: SFT teaches the model to use the calculator the engine provides), and
a completion is right when the number after its last `#### ` equals the reference's.
"""
from __future__ import annotations

import re

from nanochat_core.tasks.base import Task

ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
FINAL_ANSWER = re.compile(r"####\s*(-?[\d,]*\.?\d+)")


def extract_answer(text: str) -> str | None:
    """The number after the last `#### ` (commas dropped), or None."""
    found = FINAL_ANSWER.findall(text)
    return found[-1].replace(",", "") if found else None


def assistant_parts(answer: str) -> list[dict]:
    """The worked answer as message parts: text, and each annotation as a python call with its output."""
    parts, pos = [], 0
    for m in ANNOTATION.finditer(answer):
        if m.start() > pos:
            parts.append({"type": "text", "text": answer[pos:m.start()]})
        parts.append({"type": "python", "text": m.group(1)})
        parts.append({"type": "python_output", "text": m.group(2)})
        pos = m.end()
    if pos < len(answer):
        parts.append({"type": "text", "text": answer[pos:]})
    return parts


def reference_text(content) -> str:
    """The text of an assistant message: a plain string as is, else its text parts joined (tool
    calls and outputs left out: the final `#### N` is in the text)."""
    if isinstance(content, str):
        return content
    return "".join(p["text"] for p in content if p.get("type") == "text")


class WorkedAnswerTask(Task):
    """A task over `self.items`, a list of (question, worked answer ending `#### N`)."""

    eval_type = "generative"
    items: list[tuple[str, str]]

    def num_examples(self) -> int:
        return len(self.items)

    def get_example(self, index: int) -> dict:
        question, answer = self.items[index]
        return {"messages": [{"role": "user", "content": question},
                             {"role": "assistant", "content": assistant_parts(answer)}]}

    def evaluate(self, conversation: dict, completion: str) -> bool:
        expected = extract_answer(reference_text(conversation["messages"][-1]["content"]))
        return expected is not None and extract_answer(completion) == expected
