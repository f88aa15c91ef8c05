"""Generative recommenders: GPT-DGRS and BERT-DGRS on transformers backbones, constrained decoding."""
