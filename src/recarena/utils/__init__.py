"""Utilities: the instantiate helper, atomic writes, OmegaConf resolvers, W&B logger and record reader."""
