"""Where a conversation's variety comes from: seeded choices per conversation index.

Sampling at temperature 1 alone gives near-identical chats; nanochat draws a topic, a user
persona, a conversation dynamic and a first-message style for each one. We draw them from
random.Random(f"{seed}:{index}") (string seeds hash with SHA-512, so the draw is the same on every
machine and Python run): conversation `index` gets the same choices whatever the worker count,
order of completion, or a resume with --append.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from nanochat_core.synthetic.knowledge import Topic


@dataclass(frozen=True)
class Persona:
    who: str        # described to the API model
    intro: str      # how this user introduces themselves (offline backend)


@dataclass(frozen=True)
class Dynamic:
    description: str
    exchanges: int  # user turns; each is answered, so messages = 2 * exchanges
    kind: str       # what the later user turns do (the offline backend acts it out)


PERSONAS = (
    Persona("a curious high-school student who just heard about language models", "I'm a student and we're learning about AI at school."),
    Persona("a software engineer evaluating small models to run locally", "I'm a software engineer looking at small models I can run myself."),
    Persona("a machine-learning researcher interested in training recipes", "I do ML research, mostly on training efficiency."),
    Persona("a teacher preparing a lesson about chatbots", "I'm a teacher putting together a lesson about chatbots."),
    Persona("a journalist writing an article about open-source AI", "I'm a journalist writing a piece on open-source AI."),
    Persona("a non-native English speaker who writes simple sentences", "Hello, my English is not perfect."),
    Persona("a skeptical user who doubts that small models are useful", "Honestly I'm not convinced small models are good for anything."),
    Persona("a hobbyist with one gaming GPU who wants to train their own model", "I'm a hobbyist with a single gaming GPU at home."),
    Persona("a product manager deciding whether to use the project", "I'm a product manager trying to understand what this can do."),
    Persona("a retired engineer exploring new technology for fun", "I'm retired and I like trying out new technology."),
)

DYNAMICS = (
    Dynamic("a single question and a complete answer", 1, "single"),
    Dynamic("the user asks a question, then asks for more detail", 2, "elaborate"),
    Dynamic("the user doubts the first answer and the assistant calmly confirms it with specifics", 2, "skeptic"),
    Dynamic("the user opens with small talk, then asks the real question", 2, "smalltalk"),
    Dynamic("the user asks, gets an answer, asks a related question, then thanks the assistant", 3, "thanks"),
    Dynamic("a longer exploration where the user moves between related topics", 3, "explore"),
)

FIRST_MESSAGE_STYLES = (
    "a bare greeting such as 'hi' or 'hello there', with no question yet",
    "a direct, complete question",
    "a few keywords, not a full sentence",
    "formal and polite",
    "casual, all lowercase, little punctuation",
    "a longer message where the user first says who they are, then asks",
)


@dataclass(frozen=True)
class Choices:
    topic: Topic
    related: Topic      # a second topic for dynamics that move on
    persona: Persona
    dynamic: Dynamic
    style_index: int

    @property
    def style(self) -> str:
        return FIRST_MESSAGE_STYLES[self.style_index]

    def metadata(self) -> dict:
        return {"topic": self.topic.title, "related_topic": self.related.title, "persona": self.persona.who,
                "dynamics": self.dynamic.description, "first_message_style": self.style}


def conversation_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"{seed}:{index}")


def choose(seed: int, index: int, topics: list[Topic]) -> Choices:
    rng = conversation_rng(seed, index)
    topic = rng.choice(topics)
    others = [t for t in topics if t is not topic] or [topic]
    return Choices(
        topic=topic,
        related=rng.choice(others),
        persona=rng.choice(PERSONAS),
        dynamic=rng.choice(DYNAMICS),
        style_index=rng.randrange(len(FIRST_MESSAGE_STYLES)),
    )
