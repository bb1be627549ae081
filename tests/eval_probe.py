"""Run an evaluation command's main() (one process or one torchrun rank) and record how many rows this
process put through the model, so a test can tell a split of the work from every rank doing all of it.

    python tests/eval_probe.py <module> <out_dir> <args...>   writes <out_dir>/rank<RANK>.json
"""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

from nanochat_core.model.gpt import GPT

rows_seen = 0
_hidden_states = GPT.hidden_states


def _counting_hidden_states(self, idx, *args, **kwargs):
    """GPT.hidden_states itself, after counting the batch's rows (every scoring path goes through it)."""
    global rows_seen
    rows_seen += idx.size(0)
    return _hidden_states(self, idx, *args, **kwargs)


if __name__ == "__main__":
    module, out_dir, *argv = sys.argv[1:]
    GPT.hidden_states = _counting_hidden_states
    rc = importlib.import_module(module).main(argv)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / f"rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps({"rows": rows_seen}))
    sys.exit(rc)
