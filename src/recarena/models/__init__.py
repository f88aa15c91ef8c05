"""Model layer: the RecModule contract, FitOnceModule, ranking helpers and every family."""
