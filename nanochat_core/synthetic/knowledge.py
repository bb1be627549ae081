"""The knowledge base the identity conversations are drawn from.

A Markdown file: each "## " section is a topic, "- " lines are facts, "> " lines are example user
questions. The API backend sends the whole text to the model; the offline backend quotes the facts
directly. Sections are also the topic dimension of the diversity choices, so a user's own
knowledge file brings its own topics.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from nanochat_core.synthetic.errors import KnowledgeFileNotFound

DEFAULT_KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge" / "self_knowledge.md"


@dataclass
class Topic:
    title: str
    facts: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)


@dataclass
class Knowledge:
    path: Path
    text: str
    topics: list[Topic]

    def facts_markdown(self) -> str:
        """The facts alone, by topic: what the API model is shown (the file's own preamble, which
        speaks to the person editing it, would only confuse it)."""
        return "\n\n".join(f"## {t.title}\n" + "\n".join(f"- {f}" for f in t.facts) for t in self.topics)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def load_knowledge(path: str | Path | None = None) -> Knowledge:
    """Read and parse the knowledge file; a missing or fact-less file stops before any work."""
    path = Path(path) if path is not None else DEFAULT_KNOWLEDGE
    if not path.is_file():
        raise KnowledgeFileNotFound(
            f"Knowledge base file not found: {path}\n"
            "Create it: write facts about your model as Markdown ('## Topic' headings, '- fact' lines, "
            "optional '> example question' lines), e.g. start from a copy of the packaged default "
            f"{DEFAULT_KNOWLEDGE} and edit it, then pass --knowledge {path}"
        )
    text = path.read_text(encoding="utf-8")
    topics = parse_topics(text)
    if not any(t.facts for t in topics):
        raise KnowledgeFileNotFound(
            f"Knowledge base file has no facts: {path}\n"
            "Add '- fact' lines under '## Topic' headings (see the packaged default for an example)."
        )
    return Knowledge(path=path, text=text, topics=[t for t in topics if t.facts])


def parse_topics(text: str) -> list[Topic]:
    """Split Markdown into topics; facts before the first heading go to a 'General' topic."""
    topics = [Topic("General")]
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("## "):
            topics.append(Topic(line[3:].strip()))
        elif line.startswith(("- ", "* ")):
            topics[-1].facts.append(line[2:].strip())
        elif line.startswith("> "):
            topics[-1].questions.append(line[2:].strip())
    return topics
