"""Data layer: sources, preprocessing, splits, the shared Interactions and the datamodule."""
