"""raw_corpus -> shuffled_shards -> tokenizer: each writes files under the preset's root and
returns a content-hash data version, so downstream cells go unsynced only on real change."""

import json
from typing import Optional

import dagster as dg

from nanochat_core.common import settings
from nanochat_core.common.file_hash import files_sha256
from nanochat_pipeline.checks import SHARD_CHECKS, TOKENIZER_CHECKS, shard_checks, tokenizer_checks
from nanochat_pipeline.presets import Preset
from nanochat_pipeline.presets.paths import corpus_file, tokenizer_files
from nanochat_pipeline.presets.run_config import effective_settings, settings_metadata
from nanochat_pipeline.staleness import AUTOMATION, require_checks_passed, require_files

class RawCorpusConfig(dg.Config):
    """raw_corpus's settings for one run (the preset's [corpus] keys); None = the preset's value."""

    source: Optional[str] = None  # embedded, local or fineweb-edu
    max_bytes: Optional[int] = None  # embedded: bytes of text
    input: Optional[list[str]] = None  # local: files or folders
    text_field: Optional[str] = None  # local: the JSONL/parquet field holding the text
    num_files: Optional[int] = None  # fineweb-edu: parquet files to download


class ShuffledShardsConfig(dg.Config):
    """shuffled_shards' settings for one run (the preset's [corpus] keys); None = the preset's value."""

    chars_per_shard: Optional[int] = None
    row_group_size: Optional[int] = None
    seed: Optional[int] = None  # the shuffle's


class TokenizerConfig(dg.Config):
    """tokenizer's settings for one run (the preset's [tokenizer] keys, tok_train's flags); None = the preset's."""

    vocab_size: Optional[int] = None
    max_chars: Optional[int] = None
    doc_cap: Optional[int] = None


def own_keys(table: dict, config_class) -> dict:
    """The entries of a preset table that `config_class` covers ([corpus] feeds two assets)."""
    return {k: v for k, v in table.items() if k in config_class.model_fields}


def corpus_documents(corpus: dict):
    """The documents of the preset's [corpus] source, streamed (core sources)."""
    source = corpus.get("source", "embedded")
    if source == "embedded":
        from nanochat_core.data.embedded_corpus import TARGET_BYTES, iter_embedded_documents
        return iter_embedded_documents(int(corpus.get("max_bytes", TARGET_BYTES)))
    if source == "local":
        from nanochat_core.data.sources import local_source
        return local_source(corpus.get("input", []), corpus.get("text_field", "text")).documents()
    if source == "fineweb-edu":
        from nanochat_core.data.fineweb import fineweb_source
        return fineweb_source(num_files=int(corpus.get("num_files", 1))).documents()
    raise dg.Failure(f"[corpus] source {source!r} is not one of embedded, local, fineweb-edu")


def build_data_assets(preset: Preset) -> list:
    root = preset.root
    shards_dir = settings.base_data_dir(root)
    tok_dir = settings.tokenizer_dir(root)

    @dg.asset(group_name="data", code_version="1", automation_condition=AUTOMATION,
              description="The raw documents of the preset's [corpus] source, as JSONL.")
    def raw_corpus(context: dg.AssetExecutionContext, config: RawCorpusConfig) -> dg.MaterializeResult:
        corpus = {"source": "embedded"} | effective_settings(own_keys(preset.corpus, RawCorpusConfig), config)
        path = corpus_file(preset)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".jsonl.tmp")
        count = chars = 0
        with open(tmp, "w", encoding="utf-8") as f:
            for doc in corpus_documents(corpus):
                f.write(json.dumps({"text": doc}) + "\n")
                count, chars = count + 1, chars + len(doc)
        tmp.replace(path)  # never a half-written corpus under the real name
        context.log.info(f"wrote {count:,} documents ({chars:,} chars) to {path}")
        return dg.MaterializeResult(metadata={"documents": count, "characters": chars, "path": dg.MetadataValue.path(str(path))}
                                    | settings_metadata(corpus),
                                    data_version=dg.DataVersion(files_sha256([path])))

    @dg.asset(group_name="data", code_version="1", deps=[raw_corpus], automation_condition=AUTOMATION,
              check_specs=SHARD_CHECKS, description="Globally shuffled zstd parquet shards; the last is validation.")
    def shuffled_shards(context: dg.AssetExecutionContext, config: ShuffledShardsConfig) -> dg.MaterializeResult:
        from nanochat_core.data.shards import DEFAULT_ROW_GROUP_SIZE, DEFAULT_SEED, repackage
        from nanochat_core.data.sources import local_source

        require_files("shuffled_shards", [corpus_file(preset)], "raw_corpus")
        s = ({"row_group_size": DEFAULT_ROW_GROUP_SIZE, "seed": DEFAULT_SEED}
             | effective_settings(own_keys(preset.corpus, ShuffledShardsConfig), config))
        row_group_size = int(s["row_group_size"])
        kwargs = {"chars_per_shard": int(s["chars_per_shard"])} if "chars_per_shard" in s else {}
        manifest = repackage(local_source([str(corpus_file(preset))]), shards_dir, row_group_size=row_group_size,
                             seed=int(s["seed"]), progress=False, log=context.log.info, **kwargs)
        return dg.MaterializeResult(
            metadata={"shards": len(manifest["shards"]), "documents": manifest["documents"],
                      "characters": manifest["characters"], "path": dg.MetadataValue.path(str(shards_dir))}
            | settings_metadata(s),
            data_version=dg.DataVersion(manifest["content_sha256"]),
            check_results=shard_checks(shards_dir, row_group_size))

    @dg.asset(group_name="data", code_version="1", deps=[shuffled_shards], automation_condition=AUTOMATION,
              check_specs=TOKENIZER_CHECKS, description="The BPE tokenizer (rustbpe -> tiktoken) trained on the train shards.")
    def tokenizer(context: dg.AssetExecutionContext, config: TokenizerConfig) -> dg.MaterializeResult:
        from nanochat_core.cli.tok_train import build_parser, train
        from nanochat_core.data.manifest import MANIFEST_NAME

        require_files("tokenizer", [shards_dir / MANIFEST_NAME], "shuffled_shards")
        require_checks_passed("tokenizer", context.instance, SHARD_CHECKS)
        defaults = {a.dest: a.default for a in build_parser()._actions if a.dest in TokenizerConfig.model_fields}
        t = defaults | effective_settings(preset.tokenizer, config)  # tok_train's defaults, then preset, then run
        stats = train(int(t["max_chars"]), int(t["doc_cap"]), int(t["vocab_size"]), data_dir=shards_dir, out_dir=tok_dir)
        context.log.info(f"vocab {stats['vocab_size']:,} trained on {stats['characters']:,} chars in "
                         f"{stats['train_seconds']:.1f}s -> {tok_dir}")
        return dg.MaterializeResult(
            metadata={k: v for k, v in stats.items() if isinstance(v, (int, float))}
            | {"path": dg.MetadataValue.path(str(tok_dir))} | settings_metadata(t),
            data_version=dg.DataVersion(files_sha256(tokenizer_files(tok_dir))),
            check_results=tokenizer_checks(tok_dir, shards_dir))

    return [raw_corpus, shuffled_shards, tokenizer]


