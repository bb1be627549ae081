"""Chat tasks (GSM8K, MMLU, ARC, HumanEval, SmolTalk, CustomJSON), their release files and the SFT mixture rows. Imports execution, tokenizer and common."""
