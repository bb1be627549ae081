"""Training loops (base pretraining, later SFT), their LR schedules and the checkpoint layout."""
