"""Reporting: sweep leaderboards (md/csv), plots, the W&B report run and per-job sample recommendations."""
