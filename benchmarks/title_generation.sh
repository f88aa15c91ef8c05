#!/usr/bin/env bash
# Title generation against popularity, on the same seeded users (docs/llm-dgrs.md, "Title generation"): popularity;
# SmolLM2 zero-shot with trie and with embedding grounding; SmolLM2 fine-tuned (LoRA) on every history window as a
# title list, evaluated with the trie and, from the same weights (recarena.eval), with embedding grounding; then one
# table with the error rates of the raw outputs (benchmarks.llm_table).
#   bash benchmarks/title_generation.sh OUT [override ...]
# CPU budget (the defaults): 300 users (USERS), 300 training batches of 8 windows (BATCHES: ~50-60 min here). Full
# size on a GPU (benchmarks/llm_dgrs_gpu.sh): USERS=null BATCHES=null with trainer=gpu and more epochs as overrides.
set -euo pipefail
out=${1:-outputs/title-generation}
shift || true
py=${PY:-.venv/bin/python}
users=${USERS:-300}
batches=${BATCHES:-300}
common=(data=ml100k split=leave_one_out seed=0 "eval.ks=[5,10]" eval.max_users="$users" logger=csv
        trainer.enable_progress_bar=false)
titles=(model=llm_dgrs model.mode=titles model.max_len=10)
embedding=(model.constrained=false model.grounding=embedding model.num_beams=5)
train() { "$py" -m recarena.train "$@" "${common[@]}" "${extra[@]}"; }
extra=("$@")
train model=pop hydra.run.dir="$out/pop"
train "${titles[@]}" model.finetune=false hydra.run.dir="$out/zeroshot_trie"
train "${titles[@]}" model.finetune=false "${embedding[@]}" hydra.run.dir="$out/zeroshot_embedding"
train "${titles[@]}" model.title_training=windows model.batch_size=8 trainer.max_epochs=1 \
  trainer.limit_train_batches="$batches" hydra.run.dir="$out/windows_trie"
"$py" -m recarena.eval run_dir="$out/windows_trie" stages=[val,test] output_dir="$out/windows_embedding" \
  +model.constrained=false +model.grounding=embedding +model.num_beams=5
"$py" -m benchmarks.llm_table "$out"/*/ --users-from "$out/pop"
