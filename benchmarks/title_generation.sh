#!/usr/bin/env bash
# Title generation against popularity, on the same seeded users (docs/llm-dgrs.md, "Title generation"): popularity;
# SmolLM2 zero-shot and SmolLM2 fine-tuned (LoRA) on every history window as a title list, each with the trie and,
# from the same model, with embedding grounding at popularity weights chosen on validation
# (benchmarks.grounding_weights); then one table with the error rates of the raw outputs (benchmarks.llm_table).
#   bash benchmarks/title_generation.sh OUT [override ...]
# Training and the trie rows take no decision on validation (one epoch, fixed decoding), so they run the test stage
# only: beam search over titles is the cost (~2 s per user on this CPU). CPU budget (the defaults): 300 seeded users
# (USERS), 200 training batches of 8 windows (BATCHES; ~35 min here). Full size on a GPU (benchmarks/llm_dgrs_gpu.sh):
# USERS=null BATCHES=null with trainer=gpu as an override.
set -euo pipefail
out=${1:-outputs/title-generation}
shift || true
mkdir -p "$(dirname "$out")"
py=${PY:-.venv/bin/python}
users=${USERS:-300}
batches=${BATCHES:-200}
common=(data=ml100k split=leave_one_out seed=0 "eval.ks=[5,10]" eval.max_users="$users" logger=csv
        trainer.enable_progress_bar=false ++trainer.limit_val_batches=0)
titles=(model=llm_dgrs model.mode=titles model.max_len=10)
extra=("$@")  # overrides for the language-model rows (e.g. trainer=gpu)
train() { "$py" -m recarena.train "$@" "${common[@]}"; }
llm() { train "${titles[@]}" "$@" "${extra[@]}"; }
weights() {  # embedding grounding of a finished run's model, its popularity weight chosen on validation
  "$py" -m benchmarks.grounding_weights "$1" --weights "${WEIGHTS:-0,0.1,0.3,1,3}" --num-beams 5
}
finetuned() {  # the fine-tuning lane runs beside the others (one process per core)
  llm model.title_training=windows model.batch_size=8 trainer.max_epochs=1 \
    ++trainer.limit_train_batches="$batches" "~callbacks.early_stopping" hydra.run.dir="$out/windows_trie"
  weights "$out/windows_trie"
}
finetuned > "$out.finetuned.log" 2>&1 &
lane=$!
train model=pop hydra.run.dir="$out/pop"
llm model.finetune=false hydra.run.dir="$out/zeroshot_trie"
weights "$out/zeroshot_trie"
wait "$lane"
"$py" -m benchmarks.llm_table "$out"/pop "$out"/*_trie "$out"/*_trie/grounding_weights/test-*/ --users-from "$out/pop"
