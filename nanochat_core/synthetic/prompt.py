"""What the API backend asks for: the prompt and the strict JSON schema of the answer.

The prompt carries every fact of the knowledge file plus this conversation's drawn choices; the schema
makes the provider return {"messages": [{"role", "content"}]} and nothing else (strict mode needs
every property required and no additional properties). The schema cannot express alternation or a
minimum length, so the answer is still checked with the shared validator.
"""
from __future__ import annotations

from nanochat_core.synthetic.diversity import Choices
from nanochat_core.synthetic.knowledge import Knowledge

RESPONSE_SCHEMA = {
    "type": "object",
    "properties": {
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"type": "string", "enum": ["user", "assistant"]},
                    "content": {"type": "string"},
                },
                "required": ["role", "content"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["messages"],
    "additionalProperties": False,
}

RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "conversation", "strict": True, "schema": RESPONSE_SCHEMA},
}


def build_prompt(knowledge: Knowledge, choices: Choices) -> list[dict]:
    """The chat-completions `messages` for one synthetic conversation."""
    n = choices.dynamic.exchanges + (1 if choices.style_index == 0 else 0)
    instructions = f"""You write training data for a small chat model. Write one realistic conversation between a user and the assistant described in the knowledge base below.

The assistant speaks in the first person as the model the knowledge base describes. Everything it says about itself (name, creators, training, abilities, limitations) must agree with the knowledge base; if asked something the knowledge base does not cover, it says it does not know rather than inventing facts. Its answers are friendly, accurate and concise plain text.

This conversation:
- Main topic: {choices.topic.title}
- If the conversation moves on, a related topic: {choices.related.title}
- The user is {choices.persona.who}; write the user's messages in their voice.
- Conversation dynamics: {choices.dynamic.description}.
- The user's first message is {choices.style}.
- Length: exactly {n} user message(s), each followed by the assistant's reply ({2 * n} messages in all).

Return JSON: {{"messages": [{{"role": "user", "content": "..."}}, {{"role": "assistant", "content": "..."}}, ...]}}, roles alternating and starting with the user.

Knowledge base:
{knowledge.facts_markdown()}"""
    return [{"role": "user", "content": instructions}]
