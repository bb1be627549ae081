"""Evaluation: bits per byte, CORE (DCLM's in-context tasks) and the chat tasks (ChatCORE).

Imports the building blocks (chat, tasks, model, tokenizer, data) and common; train imports it.
"""
