"""chat_cli against a tiny checkpoint: the one-shot answer is the engine's greedy answer, interactive
mode keeps the conversation (turn 2 sees turn 1), `clear` resets it, `quit` ends; a missing checkpoint
folder is an error naming the folder and the command that creates it. The interactive session runs as a
real subprocess (stdin a pipe, `python -m`); the other cases call main() in this process (a child's
start-up costs 7-10 s on a busy 2-core machine and is not what they check)."""
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chat_fixtures import write_chat_checkpoint

REPO = Path(__file__).resolve().parents[1]
MAX_TOKENS = 16

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_cli(base: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """(exit code, stdout, stderr); bytes decoded by hand: text mode would turn a generated \r into \n."""
    env = dict(os.environ, NANOCHAT_BASE_DIR=str(base), OMP_NUM_THREADS="1", PYTHONIOENCODING="utf-8")
    proc = subprocess.run([sys.executable, "-m", "nanochat_core.cli.chat_cli", *args], cwd=REPO, env=env,
                          input=stdin.encode(), capture_output=True, timeout=120)
    return proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8", errors="replace")


def run_main(monkeypatch, capsys, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """run_cli's (exit code, stdout, stderr) from main() in this process, stdin read from `stdin`."""
    from nanochat_core.cli.chat_cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()  # pytest's capture translates no newlines: a generated \r stays \r
    return rc, out, err


def greedy(chat_model, prompt_tokens: list[int]) -> list[int]:
    from nanochat_core.chat.tools import complete_rows

    return complete_rows(chat_model.model, chat_model.tokenizer, prompt_tokens, MAX_TOKENS, temperature=0.0)[0].tokens


def user_turn(tok, text: str) -> list[int]:
    s = tok.encode_special
    return [s("<|user_start|>"), *tok.encode(text), s("<|user_end|>"), s("<|assistant_start|>")]


@pytest.fixture
def chat_base(tmp_base_dir):
    from nanochat_core.chat.loaded_model import load_chat_model

    write_chat_checkpoint(tmp_base_dir)
    return tmp_base_dir, load_chat_model("sft")


def test_one_shot_prompt_prints_the_greedy_answer(chat_base, monkeypatch, capsys):
    base, cm = chat_base
    tok = cm.tokenizer
    expected = tok.decode(greedy(cm, [tok.get_bos_token_id(), *user_turn(tok, "the cat sees")]))
    assert expected.strip()
    rc, out, err = run_main(monkeypatch, capsys, "-p", "the cat sees", "-t", "0", "--max-tokens", str(MAX_TOKENS))
    assert rc == 0, err
    assert out == expected + "\n"


def test_interactive_keeps_the_conversation_and_clear_resets_it(chat_base):
    base, cm = chat_base
    tok = cm.tokenizer
    a_end = tok.encode_special("<|assistant_end|>")
    turn1 = [tok.get_bos_token_id(), *user_turn(tok, "hello")]
    answer1 = greedy(cm, turn1)
    answer2 = greedy(cm, turn1 + answer1 + [a_end] + user_turn(tok, "a dog helps"))
    stdin = "hello\n\na dog helps\nclear\nhello\nquit\nnever answered\n"
    rc, out, err = run_cli(base, "-g", "d1", "-s", "7", "-t", "0", "--max-tokens", str(MAX_TOKENS), stdin=stdin)
    assert rc == 0, err
    assert out.startswith("Chat with sft model d1 (step 7).")
    # each answer is followed by a newline and the next "\nUser: " prompt; "never answered" comes after quit
    answers = [seg.split("\n\nUser: ")[0] for seg in out.split("\nAssistant: ")[1:]]
    assert answers == [tok.decode(answer1), tok.decode(answer2), tok.decode(answer1)]
    assert answer1 != answer2  # turn 2 really saw a different conversation
    assert "Conversation cleared." in out


def test_end_of_input_ends_the_session(chat_base, monkeypatch, capsys):
    rc, out, err = run_main(monkeypatch, capsys, "-t", "0", "--max-tokens", "4", stdin="hello\n")
    assert rc == 0, err
    assert out.count("Assistant: ") == 1


def test_missing_checkpoints_name_the_folder_and_the_command(tmp_base_dir, capsys):
    from nanochat_core.cli.chat_cli import main

    assert main(["-p", "hi"]) == 1
    err = capsys.readouterr().err
    assert str(tmp_base_dir / "chatsft_checkpoints") in err and "python -m nanochat_core.cli.chat_sft" in err
    write_chat_checkpoint(tmp_base_dir, source="sft")
    assert main(["-i", "base", "-p", "hi"]) == 1
    err = capsys.readouterr().err
    assert str(tmp_base_dir / "base_checkpoints") in err and "python -m nanochat_core.cli.base_train" in err
    assert main(["-g", "d9", "-p", "hi"]) == 1
    err = capsys.readouterr().err
    assert str(tmp_base_dir / "chatsft_checkpoints" / "d9") in err and "d1" in err


def test_bad_flags_are_refused(capsys):
    from nanochat_core.cli.chat_cli import main

    with pytest.raises(SystemExit):
        main(["--max-tokens", "0"])
    assert "--max-tokens must be >= 1" in capsys.readouterr().err
