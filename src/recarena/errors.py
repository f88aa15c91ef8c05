"""Errors a user can act on: each message names the file, column, key or value at fault."""


class RecArenaError(ValueError):
    """Base class for user-facing errors (bad data, bad config)."""


class DataError(RecArenaError):
    """A data file or table is missing, unreadable or inconsistent."""


class ConfigError(RecArenaError):
    """A configuration value is invalid; the message names the key."""


class RunError(RecArenaError):
    """A run folder is incomplete or unreadable (its saved config or checkpoint); the message names the file."""
