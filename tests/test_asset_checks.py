"""Every asset check of the data, training and chat assets fails on a real bad artifact, with a
message naming the file and the value, and passes on a good one."""
import json
import math

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chat_fixtures import write_chat_checkpoint
from nanochat_core.model.checkpoint import load_problem
from nanochat_pipeline.checks import (built_on_base_check, plausible_loss_check, reported_loads_check, shard_checks,
                                     tokenizer_checks, uniform_guess_bpb)
from helpers import generated_documents, write_shards
from train_fixtures import build_base, write_tokenizer


def by_name(results):
    return {r.check_name: r for r in results}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Shards (2 train + val, row groups of 64) and a BPE tokenizer of 384 tokens."""
    return build_base(tmp_path_factory.mktemp("base"))


def test_good_shards_pass(base):
    assert all(r.passed for r in shard_checks(base / "base_data", 64))


def test_empty_shard_fails_naming_it(tmp_path):
    docs = generated_documents(200)
    write_shards(tmp_path, [docs[:100], docs[100:]], row_group_size=64)
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / "shard_00002.parquet")
    check = by_name(shard_checks(tmp_path, 64))["shards_not_empty"]
    assert not check.passed and "shard_00002.parquet" in check.description and str(tmp_path) in check.description


def test_row_groups_of_another_size_fail_naming_shard_and_size(tmp_path):
    docs = generated_documents(300)
    write_shards(tmp_path, [docs[:200], docs[200:]], row_group_size=50)
    check = by_name(shard_checks(tmp_path, 64))["row_groups_as_configured"]
    assert not check.passed and "shard_00000.parquet has [50]" in check.description


def test_single_shard_has_no_validation_split(tmp_path):
    write_shards(tmp_path, [generated_documents(100)], row_group_size=64)
    check = by_name(shard_checks(tmp_path, 64))["has_validation_shard"]
    assert not check.passed and "holds 1 shard(s)" in check.description


def test_good_tokenizer_passes(base):
    assert all(r.passed for r in tokenizer_checks(base / "tokenizer", base / "base_data"))


def test_tokenizer_that_compresses_no_better_than_bytes_fails(base, tmp_path):
    # 256 byte tokens + 9 specials: no merge at all, one token per byte.
    write_tokenizer(tmp_path, generated_documents(100), vocab_size=265)
    checks = by_name(tokenizer_checks(tmp_path, base / "base_data"))
    assert checks["round_trip"].passed
    floor = checks["bytes_per_token_above_floor"]
    assert not floor.passed and floor.metadata["bytes_per_token"].value == pytest.approx(1.0)
    assert f"{tmp_path / 'tokenizer.pkl'} compresses the validation text to 1.000 bytes/token" in floor.description


def test_tokenizer_missing_a_byte_fails_round_trip(base, tmp_path):
    import tiktoken

    from nanochat_core.tokenizer.bpe import Tokenizer

    good = Tokenizer.from_directory(base / "tokenizer").enc
    ranks = {b: r for b, r in good._mergeable_ranks.items() if b != b"e"}  # a hand-edited vocabulary
    broken = tiktoken.Encoding(name="broken", pat_str=good._pat_str, mergeable_ranks=ranks,
                               special_tokens=good._special_tokens)
    Tokenizer(broken).save(tmp_path)
    check = by_name(tokenizer_checks(tmp_path, base / "base_data"))["round_trip"]
    assert not check.passed and f"{tmp_path / 'tokenizer.pkl'} cannot encode the validation text" in check.description


def test_uniform_guess_of_a_byte_tokenizer_is_log2_vocab(base, tmp_path):
    # One token per byte: log2(265) bits per token = log2(265) bits per byte, whatever the text.
    write_tokenizer(tmp_path, generated_documents(100), vocab_size=265)
    assert uniform_guess_bpb(tmp_path, base / "base_data") == pytest.approx(math.log2(265), rel=1e-9)


@pytest.mark.parametrize("loss, bpb, why", [
    (float("nan"), float("nan"), "final_loss is nan; val_bpb is nan"),
    (2.0, float("inf"), "val_bpb is inf"),
    (2.0, -0.5, "val_bpb is -0.5"),
    (0.0, 0.0, "final_loss is 0.0; val_bpb is 0.0"),
    (2.0, 9.0, "val_bpb 9.0000 is not below 4.5000, the bpb of a uniform guess"),
    (2.0, None, "val_bpb is None"),
])
def test_implausible_loss_fails_naming_checkpoint_and_value(loss, bpb, why):
    metadata = {"final_loss": loss, "checkpoint": "/ckpt/d1/model_000010.pt"} | ({} if bpb is None else {"val_bpb": bpb})
    check = plausible_loss_check(metadata, uniform_bpb=4.5)
    assert not check.passed and check.description.startswith(f"/ckpt/d1/model_000010.pt: {why}")


def test_plausible_loss_passes():
    check = plausible_loss_check({"final_loss": 3.1, "val_bpb": 2.2, "checkpoint": "/c.pt"}, uniform_bpb=4.5)
    assert check.passed and "val_bpb 2.2000 in (0, 4.5000)" in check.description


def test_checkpoint_that_does_not_load_fails_naming_the_file(tmp_path):
    """The child's load check (nanochat_core's load_problem), as the run worker turns it into the check."""
    folder = write_chat_checkpoint(tmp_path, source="base")
    assert load_problem(folder, 7) is None
    model = folder / "model_000007.pt"
    model.write_bytes(model.read_bytes()[:1000])  # cut short: a disk that filled up mid-copy
    problem = load_problem(folder, 7)
    assert problem.startswith(f"{model} (step 7) does not load: ")
    reported = dg.MaterializeResult(check_results=[
        dg.AssetCheckResult(check_name="checkpoint_loads", passed=False, metadata={"outcome": problem})])
    check = reported_loads_check(reported, "checkpoint_loads")
    assert not check.passed and check.description == problem


def test_a_load_check_the_child_did_not_report_fails():
    reported = dg.MaterializeResult(check_results=[dg.AssetCheckResult(check_name="sft_checkpoint_loads", passed=True)])
    check = reported_loads_check(reported, "checkpoint_loads")  # another asset's name: not this check
    assert not check.passed and check.description == "the training child reported no checkpoint_loads check"
    assert not reported_loads_check(dg.MaterializeResult(), "checkpoint_loads").passed


def sft_from(base_folder, sft_folder, base_tag, base_step):
    """An SFT checkpoint (the base's weights) whose meta says which base it was fine-tuned from."""
    from nanochat_core.model.checkpoint import load_checkpoint, save_checkpoint

    state, _, meta = load_checkpoint(base_folder, 7)
    save_checkpoint(sft_folder, 3, state, None, meta | {"step": 3, "base_model_tag": base_tag, "base_step": base_step})


def test_sft_checkpoint_from_another_base_fails(tmp_path):
    base_folder = write_chat_checkpoint(tmp_path, source="base", tag="d1_2e9")
    sft = tmp_path / "chatsft_checkpoints" / "d1_2e9"
    sft_from(base_folder, sft, "d1_2e9", 7)
    assert built_on_base_check(sft, 3, base_folder, "d1_2e9").passed

    sft_from(base_folder, sft, "d2_4e9", 7)  # fine-tuned from another cell's base, copied into this cell
    check = built_on_base_check(sft, 3, base_folder, "d1_2e9")
    assert not check.passed
    assert check.description.startswith(f"{sft / 'meta_000003.json'}: fine-tuned from base 'd2_4e9' step 7, "
                                        "not this cell's 'd1_2e9' step 7")


def test_sft_checkpoint_of_another_architecture_fails(tmp_path):
    base_folder = write_chat_checkpoint(tmp_path, source="base", tag="d1_2e9")
    sft = tmp_path / "chatsft_checkpoints" / "d1_2e9"
    sft_from(base_folder, sft, "d1_2e9", 7)
    meta_file = sft / "meta_000003.json"
    meta = json.loads(meta_file.read_text())
    meta["model_config"]["n_layer"] = 2
    meta_file.write_text(json.dumps(meta))
    check = built_on_base_check(sft, 3, base_folder, "d1_2e9")
    assert not check.passed and "differs from the base's" in check.description and "'n_layer': 2" in check.description
