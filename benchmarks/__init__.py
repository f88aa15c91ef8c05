"""Scale benchmarks: `python -m benchmarks.run --scale ml100k|ml1m|ml20m` (recarena's real road, timed per stage)."""
