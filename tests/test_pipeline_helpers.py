"""The pipeline tests' helpers now live in helpers.py; this name stays so that a test file written
against it still imports (new code imports helpers)."""
from helpers import (DATA_ASSETS, TINY_TRAIN, failure_messages, latest_materialization, materialize,  # noqa: F401
                     tiny_defs, write_tiny_preset)
