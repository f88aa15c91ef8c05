"""recarena: recommender families side by side on one data split and one evaluation."""

__version__ = "0.1.0"
