"""Non-gradient recommenders (plain classes with fit/score/explain): pop, kNN, MF, content, hybrid."""
