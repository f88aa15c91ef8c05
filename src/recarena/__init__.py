"""recarena: recommender families side by side on one data split and one evaluation."""

import os

# OpenMP threads (torch) that spin after a parallel region starve OpenBLAS's threads (numpy, scipy, implicit), and
# the reverse, when the two alternate as in every fit-once evaluation (numpy scores, torch top-K): at 2 threads that
# evaluation took twice as long. Passive waiting measured no slower in GPT-DGRS training. OpenMP reads this when torch
# is first imported, so it is set here, before any torch import; a value the user exported wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
