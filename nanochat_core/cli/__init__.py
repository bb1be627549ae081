"""Command-line tools: `python -m nanochat_core.cli.<tool> --help`."""
