"""The Pipes child processes: each runs one of nanochat_core's trainers and reports it to Dagster.

The assets launch them by module name (`python -m <module>`, torchrun, a pod's command), so the
names live here, once; importing them loads neither torch nor Dagster.
"""

TRAIN_CHILD_MODULE = f"{__name__}.train"  # base_model: base_train for one grid cell
SFT_CHILD_MODULE = f"{__name__}.sft"  # sft_model: chat_sft on the cell's base checkpoint
RL_CHILD_MODULE = f"{__name__}.rl"  # rl_model: chat_rl on the cell's SFT checkpoint
