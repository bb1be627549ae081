"""What every chat task is: an indexable list of conversations, with a way to grade a completion.

eval_type "categorical": the answer is one of `conversation["letters"]`, scored by restricting the
logits to those letters; "generative": the model writes an answer that `evaluate` checks.
`start`/`stop`/`step` take a slice without copying (nanochat's validation uses slices).
"""
from __future__ import annotations

LETTERS = "ABCDEFGHIJ"


class Task:
    eval_type = "generative"
    name = "task"

    def __init__(self, start: int = 0, stop: int | None = None, step: int = 1):
        self.start, self.stop, self.step = start, stop, step

    def num_examples(self) -> int:
        raise NotImplementedError

    def get_example(self, index: int) -> dict:
        raise NotImplementedError

    def evaluate(self, conversation: dict, completion: str) -> bool:
        raise NotImplementedError(f"{self.name} has no evaluation")

    def _range(self) -> range:
        n = self.num_examples()
        stop = n if self.stop is None else min(self.stop, n)
        return range(self.start, stop, self.step)

    def __len__(self) -> int:
        return len(self._range())

    def __getitem__(self, i: int) -> dict:
        return self.get_example(self._range()[i])


def multiple_choice_prompt(question: str, choices: list[str], letters: str) -> str:
    """nanochat's multiple-choice user message: the choices as `- text=LETTER` lines, then the instruction."""
    lines = [f"Multiple Choice question: {question}"]
    lines += [f"- {choice}={letter}" for letter, choice in zip(letters, choices)]
    return "\n".join(lines) + "\n\nRespond only with the letter of the correct answer."


def multiple_choice_conversation(question: str, choices: list[str], answer: int, **extra) -> dict:
    letters = LETTERS[: len(choices)]
    return {
        "messages": [
            {"role": "user", "content": multiple_choice_prompt(question, choices, letters)},
            {"role": "assistant", "content": letters[answer]},
        ],
        "letters": list(letters),
        **extra,
    }


class MultipleChoiceTask(Task):
    eval_type = "categorical"

    def evaluate(self, conversation: dict, completion: str) -> bool:
        return completion.strip() == conversation["messages"][-1]["content"]
