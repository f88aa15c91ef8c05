"""Evaluation: docs/protocol.md §4 metrics and the one RecEvalCallback that computes and logs them."""
