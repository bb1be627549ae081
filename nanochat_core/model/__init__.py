"""The GPT and what defines it: the model, the Muon/AdamW optimizer, the KV cache, the depth dial (sizing) and the checkpoint layout. Imports only common."""
