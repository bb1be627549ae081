"""raw_corpus -> shuffled_shards -> tokenizer: each writes files under the preset's root and
returns a content-hash data version, so downstream cells go unsynced only on real change."""

import json
from pathlib import Path
from typing import Optional

import dagster as dg

from nanochat_core.common import settings
from nanochat_core.common.file_hash import files_sha256
from nanochat_pipeline.required_files import require_files
from nanochat_pipeline.presets import Preset
from nanochat_pipeline.presets.run_config import effective_settings, settings_metadata
from nanochat_pipeline.staleness import require_checks_passed

# Never consume an upstream whose latest blocking check failed (Dagster records the materialization
# anyway); a new, passing materialization of it lifts the gate.
AUTOMATION = ((dg.AutomationCondition.eager() | dg.AutomationCondition.code_version_changed())
              & dg.AutomationCondition.all_deps_blocking_checks_passed())
# Round trip and compression floor for the tokenizer check: a BPE tokenizer that compresses
# English below 1.5 bytes/token has (almost) no merges and would make training meaningless.
MIN_BYTES_PER_TOKEN = 1.5
SHARD_CHECKS = [dg.AssetCheckSpec(n, asset="shuffled_shards", blocking=True)
                for n in ("shards_not_empty", "row_groups_as_configured", "has_validation_shard")]
TOKENIZER_CHECKS = [dg.AssetCheckSpec(n, asset="tokenizer", blocking=True)
                    for n in ("round_trip", "bytes_per_token_above_floor")]


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


def corpus_file(preset: Preset) -> Path:
    return preset.root / "raw_corpus" / "documents.jsonl"


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


def tokenizer_files(tok_dir: Path) -> list[Path]:
    return [tok_dir / "tokenizer.pkl", tok_dir / "token_bytes.pt"]


def shard_checks(shards_dir: Path, row_group_size: int) -> list[dg.AssetCheckResult]:
    import pyarrow.parquet as pq
    from nanochat_core.data.parquet_files import list_parquet_files

    files = list_parquet_files(shards_dir)  # raises, naming the folder, when it holds no shard
    rows = [pq.ParquetFile(f).metadata for f in files]
    empty = [f.name for f, m in zip(files, rows) if m.num_rows == 0]
    # Every row group but each shard's last holds exactly row_group_size documents.
    bad_groups = {f.name: sorted({m.row_group(i).num_rows for i in range(m.num_row_groups - 1)} - {row_group_size})
                  for f, m in zip(files, rows)}
    bad_groups = {name: sizes for name, sizes in bad_groups.items() if sizes}
    return [
        dg.AssetCheckResult(
            check_name="shards_not_empty", passed=not empty, metadata={"shards": len(files)},
            description=(f"{shards_dir}: shards with 0 documents: {', '.join(empty)}" if empty else
                         f"{len(files)} shards in {shards_dir}, none empty")),
        dg.AssetCheckResult(
            check_name="row_groups_as_configured", passed=not bad_groups,
            metadata={"row_group_size": row_group_size,
                      "shards_with_other_sizes": ", ".join(f"{n}: {v}" for n, v in bad_groups.items())},
            description=(f"{shards_dir}: row groups other than {row_group_size} documents (before each shard's "
                         f"last): " + "; ".join(f"{n} has {v}" for n, v in bad_groups.items())) if bad_groups else
                        f"every row group but each shard's last holds {row_group_size} documents"),
        dg.AssetCheckResult(
            check_name="has_validation_shard", passed=len(files) >= 2, metadata={"shards": len(files)},
            description=f"{shards_dir} holds {len(files)} shard(s); the last one is validation, and at least one "
                        "train shard must precede it"),
    ]


def tokenizer_checks(tok_dir: Path, shards_dir: Path) -> list[dg.AssetCheckResult]:
    from nanochat_core.data.parquet_files import iter_shard_texts
    from nanochat_core.tokenizer.bpe import Tokenizer

    file = tok_dir / "tokenizer.pkl"
    tok = Tokenizer.from_directory(tok_dir)
    sample = "".join(iter_shard_texts(split="val", data_dir=shards_dir, max_chars=50_000))
    try:
        ids = tok.encode(sample)
        decoded = tok.decode(ids)
    except BaseException as e:  # tiktoken panics (a BaseException) on a byte missing from the table
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        why = f"{file} cannot encode the validation text: {type(e).__name__}: {e}"
        return [dg.AssetCheckResult(check_name="round_trip", passed=False, description=why),
                dg.AssetCheckResult(check_name="bytes_per_token_above_floor", passed=False, description=why)]
    first_diff = next((i for i, (a, b) in enumerate(zip(decoded, sample)) if a != b), min(len(decoded), len(sample)))
    round_trips = decoded == sample
    bytes_per_token = len(sample.encode()) / max(1, len(ids))
    return [
        dg.AssetCheckResult(
            check_name="round_trip", passed=round_trips, metadata={"sample_chars": len(sample)},
            description=(f"{file}: decode(encode(text)) equals the {len(sample):,} characters of validation text"
                         if round_trips else f"{file}: decode(encode(text)) differs from the validation text at "
                                             f"character {first_diff}: {sample[first_diff:first_diff + 20]!r} became "
                                             f"{decoded[first_diff:first_diff + 20]!r}")),
        dg.AssetCheckResult(
            check_name="bytes_per_token_above_floor", passed=bytes_per_token >= MIN_BYTES_PER_TOKEN,
            metadata={"bytes_per_token": bytes_per_token, "floor": MIN_BYTES_PER_TOKEN},
            description=f"{file} compresses the validation text to {bytes_per_token:.3f} bytes/token "
                        f"({'at or above' if bytes_per_token >= MIN_BYTES_PER_TOKEN else 'below'} the floor "
                        f"{MIN_BYTES_PER_TOKEN})"),
    ]
