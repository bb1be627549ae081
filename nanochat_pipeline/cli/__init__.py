"""The pipeline's commands (python -m nanochat_pipeline <command>)."""
