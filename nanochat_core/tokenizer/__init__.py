"""The BPE tokenizer (rustbpe training, tiktoken encoding), the chat conversation format and its rendering to token ids with a loss mask, and tok_eval's sample texts. Imports only common."""
