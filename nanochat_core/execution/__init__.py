"""Running untrusted generated code (HumanEval completions) in a sandboxed child process. Imports only common."""
