"""Scaling laws: the results CSV (nanochat's columns), the model-family shape, the isoFLOP fit, its plot and the analysis run. Imports model and common."""
