"""sft_model and eval_report of a tiny cell through the real Pipes child and the core's commands,
with task data in release format that the test writes, on a real (temporary) Dagster instance."""
import json
import math

import dagster as dg
import pytest

from nanochat_core.common import settings
from nanochat_core.common.file_hash import files_sha256
from helpers import (DATA_ASSETS, chat_sections, latest_materialization, materialize, tiny_defs, write_task_data,
                     write_tiny_preset)

pytestmark = pytest.mark.slow
CELL = "d1|2e9"


@pytest.fixture(scope="module")
def chat_cell(tmp_path_factory):
    """One trained cell for the module's tests (they read its inputs, or build on it without changing them)."""
    tmp_path = tmp_path_factory.mktemp("chat_cell")
    # GSM8K test and ARC-Easy test in their release formats; everything else absent
    task_data = write_task_data(tmp_path / "task_data", smoltalk=(None, None), mmlu=(None, None), gsm8k=(None, 3),
                                arc_easy_test=4)
    sections = chat_sections(num_iterations=6, eval_every=3, eval_tokens=512, chat_tasks="ARC-Easy|GSM8K|MMLU",
                             chat_max_problems=3, task_data=task_data)
    with pytest.MonkeyPatch.context() as mp, dg.instance_for_test() as instance:
        mp.setenv("NANOCHAT_BASE_DIR", str(tmp_path / "nanochat_base"))
        defs, preset = tiny_defs(write_tiny_preset(tmp_path, extra_sections=sections))
        assert materialize(defs, instance, DATA_ASSETS + ["synthetic_conversations", "eval_bundle", "task_data"]).success
        assert materialize(defs, instance, ["base_model"], CELL).success
        yield defs, preset, instance


def values(mat):
    return {k: v.value for k, v in mat.metadata.items()}


def test_inputs_say_what_is_missing_offline(chat_cell):
    _, _, instance = chat_cell
    bundle = values(latest_materialization(instance, "eval_bundle"))
    assert bundle["available"] is False and "offline" in bundle["reason"]
    tasks = values(latest_materialization(instance, "task_data"))
    assert (tasks["available"], tasks["missing"]) == (2, 7)  # GSM8K test and ARC-Easy test only
    assert "| GSM8K test | chat_eval, chat_sft (validation) | 3 rows, local release files |" in tasks["sources"]
    assert "| SmolTalk train | chat_sft | missing: " in tasks["sources"] and "HF_HUB_OFFLINE" in tasks["sources"]


def test_sft_then_eval_report(chat_cell):
    defs, preset, instance = chat_cell
    result = materialize(defs, instance, ["sft_model"], CELL)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"sft_checkpoint_loads": True, "sft_built_on_cell_base": True}
    mat = latest_materialization(instance, "sft_model", CELL)
    sft = values(mat)
    assert sft["steps"] == 6 and math.isfinite(sft["final_loss"])
    assert "identity" in sft["mixture"] and "data:image/png;base64," in sft["loss_curve"]
    ckpt_dir = settings.chatsft_checkpoints_dir(preset.root) / "d1_2e9"
    assert mat.tags["dagster/data_version"] == files_sha256([ckpt_dir / "model_000006.pt"])

    assert materialize(defs, instance, ["eval_report"], CELL).success
    report = values(latest_materialization(instance, "eval_report", CELL))
    card = (settings.report_dir(preset.root) / "d1_2e9" / "report.md").read_text()
    assert report["report"] == card
    assert "CORE was not evaluated" in card  # and the card says why
    assert 0.0 <= report["ARC-Easy (sft)"] <= 1.0 and 0.0 <= report["GSM8K (sft)"] <= 1.0
    assert "ChatCORE (sft)" not in report  # MMLU was not evaluated: ChatCORE is partial, never averaged
    assert "MMLU" in card and report["not_evaluated"] >= 2  # CORE (no bundle) and MMLU (no data) at least


def test_synthetic_conversations_through_the_api_backend(tmp_base_dir, tmp_path, monkeypatch):
    """[synthetic] backend = "api": the asset asks a chat-completions server (here one on 127.0.0.1)."""
    from nanochat_core.synthetic.local_server import LocalChatServer

    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-test")
    with LocalChatServer(script=["rate_limit"], api_key="sk-test") as srv:
        sections = f'backend = "api"\nbase_url = "{srv.base_url}"\nworkers = 2\n'
        path = write_tiny_preset(tmp_path)
        path.write_text(path.read_text().replace("[synthetic]\nnum = 5\n", "[synthetic]\nnum = 5\n" + sections))
        defs, preset = tiny_defs(path)
        with dg.instance_for_test() as instance:
            assert materialize(defs, instance, ["synthetic_conversations"]).success
            assert values(latest_materialization(instance, "synthetic_conversations"))["conversations"] == 5
        assert len(srv.requests) == 6  # five conversations, one of them retried after a 429
    lines = (preset.root / "identity_conversations.jsonl").read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(line)["messages"][0]["role"] == "user" for line in lines)
