"""Turn a HumanEval problem plus a model's completion into one program for the sandbox.

A base model continues the prompt (the function body); a chat model usually answers with the whole
function, often inside a ```python fence, after some prose. Either way the program is the code, the
problem's test code (which defines `check`) and `check(<entry point>)`; it passes when it runs to
its end.
"""
from __future__ import annotations

import re

FENCED_BLOCK = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
IMPORT_LINE = re.compile(r"^(?:import|from)\s+\S+.*$", re.MULTILINE)


def extract_code(completion: str) -> str:
    """The first fenced code block of a completion (an unclosed fence runs to the end), else the
    completion as it is."""
    match = FENCED_BLOCK.search(completion)
    return match.group(1) if match else completion


def defines_function(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def parses(source: str) -> bool:
    try:
        compile(source, "prompt", "exec")  # only compiled, never run
    except SyntaxError:
        return False
    return True


def extract_program(completion: str, prompt: str, entry_point: str) -> str:
    """The solution's code. When the completion defines the entry point itself (a chat answer), the
    prompt still comes first, for its imports and for helper functions the answer may call (HumanEval/10
    and /38 have some); its stub (signature + docstring) is then redefined by the answer. A prompt that
    does not parse on its own gives only its import lines. Otherwise the completion continues the prompt."""
    code = extract_code(completion)
    if not defines_function(code, entry_point):
        return prompt + code
    if parses(prompt):
        return f"{prompt}\n{code}"
    imports = "\n".join(IMPORT_LINE.findall(prompt))
    return f"{imports}\n\n{code}" if imports else code


def humaneval_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """The whole check program: solution, the problem's tests, then the call of its check()."""
    solution = extract_program(completion, prompt, entry_point)
    return f"{solution}\n\n{test}\n\ncheck({entry_point})\n"
