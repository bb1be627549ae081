"""The offline backend: conversations composed from the knowledge file, no network.

Same diversity dimensions as the API backend (topic, persona, dynamics, first-message style, drawn
per index), acted out with small templates; the assistant's answers quote the knowledge facts
verbatim, so what the model learns about itself is exactly what the file says. Deterministic:
(seed, index, knowledge file) -> the same conversation, byte for byte.
"""
from __future__ import annotations

import random

from nanochat_core.synthetic.diversity import Choices, choose
from nanochat_core.synthetic.knowledge import Knowledge, Topic

GREETINGS = ("hi", "hello there", "hey!", "Hello.", "good morning", "hi nanochat")
OPENERS = ("", "", "Good question! ", "Here is the short version: ")
MORE = ("Can you tell me more?", "Interesting, can you go into more detail?", "What else should I know about that?",
        "ok and then?")
DOUBTS = ("Are you sure? That sounds made up.", "Hmm, I don't really believe that.", "Really? How do you know?")
SMALL_TALK = (("How's your day going?", "I don't have days the way you do, but I'm ready to help. What's on your mind?"),
              ("Nice to meet you!", "Nice to meet you too! What would you like to talk about?"),
              ("Is it ok if I ask you a few things?", "Of course, ask away."))
THANKS = (("Thanks, that's helpful!", "You're welcome! Feel free to ask if anything else comes up."),
          ("great, thank you", "Glad I could help!"),
          ("Thank you for explaining.", "My pleasure. Have a good day!"))
MOVE_ON = ("Another question: ", "Different topic: ", "And ", "Also, ")
STOPWORDS = {"what", "who", "how", "is", "are", "the", "a", "an", "do", "does", "you", "your", "of", "can", "i", "me",
             "tell", "about", "s", "there"}


def offline_conversation(seed: int, index: int, knowledge: Knowledge) -> tuple[list[dict], Choices]:
    choices = choose(seed, index, knowledge.topics)
    rng = random.Random(f"{seed}:{index}:offline")  # separate stream: template picks never shift the choices
    msgs: list[dict] = []

    def turn(user: str, assistant: str) -> None:
        msgs.extend(({"role": "user", "content": user}, {"role": "assistant", "content": assistant}))

    if choices.style_index == 0:  # a bare greeting gets a self-introduction before any question
        turn(rng.choice(GREETINGS), f"Hello! {knowledge.topics[0].facts[0]} How can I help you today?")
    kind = choices.dynamic.kind
    if kind == "smalltalk":
        turn(*rng.choice(SMALL_TALK))
    question = _question(choices.topic, rng)
    first = question if choices.style_index == 0 else _styled(question, choices, rng)
    used = _pick_facts(choices.topic.facts, rng, lead=True)
    turn(first, rng.choice(OPENERS) + " ".join(used))
    if kind == "elaborate":
        rest = [f for f in choices.topic.facts if f not in used]
        more = " ".join(rest) if rest else "Related to that: " + " ".join(_pick_facts(choices.related.facts, rng))
        turn(rng.choice(MORE), more)
    elif kind == "skeptic":
        extra = [f for f in choices.topic.facts if f not in used] or choices.related.facts
        turn(rng.choice(DOUBTS), f"I understand the doubt, but yes: {_lower_first(used[0])} Also, {_lower_first(rng.choice(extra))}")
    elif kind in ("thanks", "explore"):
        turn(rng.choice(MOVE_ON) + _lower_first(_question(choices.related, rng)),
             " ".join(_pick_facts(choices.related.facts, rng, lead=True)))
        if kind == "thanks":
            turn(*rng.choice(THANKS))
        else:
            third = rng.choice(knowledge.topics)
            turn(rng.choice(MOVE_ON) + _lower_first(_question(third, rng)),
                 " ".join(_pick_facts(third.facts, rng, lead=True)))
    return msgs, choices


def _question(topic: Topic, rng: random.Random) -> str:
    if topic.questions:
        return rng.choice(topic.questions)
    return f"what can you tell me about {_lower_first(topic.title)}?"


def _styled(question: str, choices: Choices, rng: random.Random) -> str:
    """Rewrite the question in the drawn first-message style (index 0, the greeting, is handled before)."""
    q = question.strip()
    style = choices.style_index
    if style == 1:
        return _upper_first(q if q.endswith("?") else q + "?")
    if style == 2:
        words = [w for w in q.rstrip("?").replace("'", " ").split() if w.lower() not in STOPWORDS]
        return (" ".join(words) if words else q.rstrip("?")) + "?"
    if style == 3:
        return f"Hello, I hope you are well. I would like to ask: {_lower_first(q)} Thank you in advance."
    if style == 4:
        return q.lower().rstrip("?.!")
    return f"{choices.persona.intro} {_upper_first(q)}"


def _pick_facts(facts: list[str], rng: random.Random, lead: bool = False) -> list[str]:
    """Two or three facts in the file's order; lead=True always includes the section's first fact,
    its headline, so a direct question ("what's your name?") gets the direct answer."""
    k = min(len(facts), rng.choice((2, 2, 3)))
    if lead:
        picked = [0] + rng.sample(range(1, len(facts)), k - 1) if k > 1 else [0]
    else:
        picked = rng.sample(range(len(facts)), k)
    return [facts[i] for i in sorted(picked)]


def _upper_first(s: str) -> str:
    return s[:1].upper() + s[1:]


def _lower_first(s: str) -> str:
    # Leave acronyms and names alone: "MMLU ..." or "I ..." keep their capital.
    if len(s) > 1 and (s[1].isupper() or s[:2] in ("I ", "I'")):
        return s
    return s[:1].lower() + s[1:]
