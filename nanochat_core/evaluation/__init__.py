"""Evaluation: bits per byte here; CORE and the chat tasks come with the evaluation issue."""
