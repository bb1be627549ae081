"""CORE few-shot examples come from the task's full data (all rows but the item), so any
--max-per-task works, and a cut run scores its items with exactly the prompts a full run gives them."""
import re

import pytest

from nanochat_core.evaluation import core
from nanochat_core.evaluation.core import evaluate_model
from test_core_eval import BigramStub, CharTokenizer, write_bundle

ROWS = [{"query": f"Q{i:02d}?", "choices": ["gg", "bb"], "gold": i % 2} for i in range(14)]
TEN_SHOT = [("mc10", "mc/mc10.jsonl", "multiple_choice", 10, 50.0, ROWS)]


@pytest.fixture
def prompts(monkeypatch):
    """The prompt token rows each scored item got, by its index in the shuffled rows."""
    seen = {}
    real = core.build_example

    def recording(spec, rows, idx, tokenizer):
        ex = real(spec, rows, idx, tokenizer)
        seen[idx] = ex.prompts
        return ex

    monkeypatch.setattr(core, "build_example", recording)
    return seen


def test_ten_shot_task_scores_with_a_cut_smaller_than_its_shots(tmp_path, prompts):
    bundle = write_bundle(tmp_path / "b", tasks=TEN_SHOT)
    result = evaluate_model(BigramStub(), CharTokenizer(), "cpu", bundle_dir=bundle, max_per_task=3, log=lambda s: None)
    assert result["tasks"]["mc10"]["examples"] == 3 and not result["partial"]
    cut = dict(prompts)
    assert sorted(cut) == [0, 1, 2]
    for tokens in cut.values():  # 10 shots + the item: 11 distinct questions (the item not among its shots)
        questions = re.findall(r"Q\d\d\?", "".join(chr(t) for t in tokens[0][1:]))
        assert len(questions) == len(set(questions)) == 11

    prompts.clear()
    evaluate_model(BigramStub(), CharTokenizer(), "cpu", bundle_dir=bundle, max_per_task=-1, log=lambda s: None)
    assert len(prompts) == 14 and all(prompts[i] == cut[i] for i in cut)  # a full run's prompts for those items


def test_too_few_rows_for_the_shots_is_a_clear_error(tmp_path):
    bundle = write_bundle(tmp_path / "b", tasks=[("mc10", "mc/mc10.jsonl", "multiple_choice", 10, 50.0, ROWS[:10])])
    with pytest.raises(ValueError, match=r"mc10\.jsonl: mc10 is 10-shot, which needs at least 11 rows; the file has 10"):
        evaluate_model(BigramStub(), CharTokenizer(), "cpu", bundle_dir=bundle, max_per_task=3, log=lambda s: None)
