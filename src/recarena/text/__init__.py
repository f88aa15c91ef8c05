"""Text features: item/user text from feature tables and encoders that turn it into vectors (TF-IDF, MiniLM, HF)."""
