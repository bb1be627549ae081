"""Assets grouped by stage: data (corpus, shards, tokenizer), training (grid cells), scaling, chat."""
