"""synthetic_conversations -> sft_model[depth|flops] -> eval_report[depth|flops].

synthetic_conversations uses the core's offline generator. The SFT trainer (issue 4) and the
evaluation (issue 5) have not landed: their assets are in the graph so the seams exist, and
materializing them fails with a message saying so instead of recording a fake result.
"""

import dagster as dg

from nanochat_core.file_hash import files_sha256
from nanochat_pipeline.assets.data import AUTOMATION
from nanochat_pipeline.presets import Preset

NOT_LANDED = {
    "sft_model": "the SFT trainer has not landed yet (issue 4: chat SFT); nothing was trained or recorded",
    "eval_report": "the CORE and chat evaluations have not landed yet (issue 5: evaluation); nothing was recorded",
}


def build_chat_assets(preset: Preset, partitions: dg.MultiPartitionsDefinition, base_model_asset) -> list:
    path = preset.root / "identity_conversations.jsonl"

    @dg.asset(group_name="chat", code_version="1", automation_condition=AUTOMATION,
              description="Synthetic identity conversations (JSONL) for SFT, from the offline generator.")
    def synthetic_conversations(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        from nanochat_core.synthetic import generate_conversations

        s = preset.synthetic
        stats = generate_conversations(num=int(s.get("num", 1000)), output=path, backend="offline",
                                       seed=int(s.get("seed", 42)), show_progress=False, log=context.log.info)
        return dg.MaterializeResult(metadata={"conversations": stats["total_lines"], "path": dg.MetadataValue.path(str(path))},
                                    data_version=dg.DataVersion(files_sha256([path])))

    @dg.asset(group_name="chat", code_version="0", deps=[base_model_asset, synthetic_conversations],
              partitions_def=partitions, description="The chat model of one cell (SFT). Waiting for issue 4.")
    def sft_model(context: dg.AssetExecutionContext) -> None:
        raise dg.Failure(f"sft_model {context.partition_key}: {NOT_LANDED['sft_model']}")

    @dg.asset(group_name="chat", code_version="0", deps=[sft_model], partitions_def=partitions,
              description="CORE + chat evaluation report of one cell. Waiting for issue 5.")
    def eval_report(context: dg.AssetExecutionContext) -> None:
        raise dg.Failure(f"eval_report {context.partition_key}: {NOT_LANDED['eval_report']}")

    return [synthetic_conversations, sft_model, eval_report]
