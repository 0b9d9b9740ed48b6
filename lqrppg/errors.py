"""Errors that mean "the input is wrong", as opposed to a bug.

The CLI turns these into one clear line on stderr and exit status 1, so every
message must name the file, session or config key at fault and say what is wrong.
"""


class LqrppgError(Exception):
    """Base class for user-facing errors (bad input, bad config)."""


class ConfigError(LqrppgError):
    """A config file or value is invalid (unknown key, bad type, unknown name)."""


class DataError(LqrppgError):
    """A dataset file is missing, unreadable, truncated or inconsistent."""


class NoFaceError(DataError):
    """No face was detected in a session and no fallback was configured."""
