"""Synthetic identity conversations (nanochat's gen_synthetic_data): API or offline backend."""
from nanochat_core.synthetic.errors import SyntheticDataError
from nanochat_core.synthetic.generate import (
    BACKENDS,
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    default_output,
    generate_conversations,
)
from nanochat_core.synthetic.knowledge import DEFAULT_KNOWLEDGE

__all__ = ["BACKENDS", "DEFAULT_BASE_URL", "DEFAULT_KNOWLEDGE", "DEFAULT_MODEL", "SyntheticDataError",
           "default_output", "generate_conversations"]
