"""Settings in the launchpad: every asset with user-changeable settings takes a Config whose fields
are the preset's keys (None = the preset's value); a misspelt key is refused by name, a real one
changes what is built, and the effective settings are in the materialization's metadata."""
import dagster as dg
import pytest

from helpers import latest_materialization, materialize, metadata_values, tiny_defs, write_tiny_preset
from nanochat_core.train.args import build_parser as build_base_parser
from nanochat_core.train.rl_args import build_rl_parser
from nanochat_pipeline.assets.chat import SftConfig, SyntheticConfig
from nanochat_pipeline.assets.data import RawCorpusConfig, ShuffledShardsConfig, TokenizerConfig
from nanochat_pipeline.assets.rl import RlConfig
from nanochat_pipeline.assets.training import BaseTrainConfig
from nanochat_pipeline.presets import (CELL_FLAGS, CORPUS_KEYS, RL_PIPELINE_FLAGS, SFT_PIPELINE_FLAGS, SYNTHETIC_KEYS,
                                       TOKENIZER_KEYS, sft_flag_names)
from nanochat_pipeline.presets.run_config import effective_settings


def flags(parser) -> set[str]:
    return {a.dest for a in parser._actions if a.dest != "help"}


def fields(config_class) -> set[str]:
    return set(config_class.model_fields)


def test_config_fields_are_the_preset_keys_and_flags_they_override():
    # A field the asset does not read, or a flag the command lacks, would be accepted and do nothing.
    assert fields(RawCorpusConfig) | fields(ShuffledShardsConfig) == CORPUS_KEYS
    assert not fields(RawCorpusConfig) & fields(ShuffledShardsConfig)
    assert fields(TokenizerConfig) == TOKENIZER_KEYS and fields(SyntheticConfig) == SYNTHETIC_KEYS
    assert fields(SftConfig) <= sft_flag_names() - SFT_PIPELINE_FLAGS
    assert fields(RlConfig) <= flags(build_rl_parser()) - RL_PIPELINE_FLAGS
    assert fields(BaseTrainConfig) <= flags(build_base_parser()) - CELL_FLAGS
    for config_class in (RawCorpusConfig, ShuffledShardsConfig, TokenizerConfig, SyntheticConfig, SftConfig, RlConfig):
        assert all(value is None for value in config_class().model_dump().values()), config_class


def test_effective_settings_overlay_only_what_the_run_set():
    preset_table = {"vocab_size": 320, "max_chars": 1000}
    assert effective_settings(preset_table, TokenizerConfig(vocab_size=300)) == {"vocab_size": 300, "max_chars": 1000}
    assert effective_settings(preset_table, TokenizerConfig()) == preset_table
    assert preset_table == {"vocab_size": 320, "max_chars": 1000}  # the preset's own table is never changed


@pytest.mark.slow
def test_tokenizer_config_changes_the_vocabulary_and_a_misspelt_key_is_refused_by_name(tmp_base_dir, tmp_path):
    from nanochat_core.common import settings
    from nanochat_core.tokenizer.bpe import Tokenizer

    defs, preset = tiny_defs(write_tiny_preset(tmp_path, vocab_size=320))
    with dg.instance_for_test() as instance:
        assert materialize(defs, instance, ["raw_corpus", "shuffled_shards"]).success
        with pytest.raises(dg.DagsterInvalidConfigError, match='unexpected config entry "vocab_sise"'):
            materialize(defs, instance, ["tokenizer"], run_config={"ops": {"tokenizer": {"config": {"vocab_sise": 300}}}})

        assert materialize(defs, instance, ["tokenizer"],
                           run_config={"ops": {"tokenizer": {"config": {"vocab_size": 300}}}}).success
        tok_dir = settings.tokenizer_dir(preset.root)
        assert Tokenizer.from_directory(tok_dir).get_vocab_size() == 300  # the file on disk, not only metadata
        meta = metadata_values(latest_materialization(instance, "tokenizer"))
        assert meta["vocab_size"] == 300
        assert meta["settings"] == {"vocab_size": 300, "max_chars": 1_000_000, "doc_cap": 10_000}

        assert materialize(defs, instance, ["tokenizer"]).success  # no run config: the preset's value again
        assert Tokenizer.from_directory(tok_dir).get_vocab_size() == 320
        assert metadata_values(latest_materialization(instance, "tokenizer"))["settings"]["vocab_size"] == 320
