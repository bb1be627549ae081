"""Raw corpus: sources, shuffled parquet shards, manifest, Hub upload, and shard reading helpers."""
