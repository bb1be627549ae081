"""The report card: what each stage recorded (sources), the environment, and its markdown. Imports model, tokenizer, data and common."""
