"""The chat engine: KV-cache generation, the calculator tool, streaming, loading a chat model from a checkpoint, and the web server with its request checks. Imports model, tokenizer and common."""
