"""Evaluation: bits per byte (bpb) and CORE (core*); the chat tasks come with the evaluation issue."""
