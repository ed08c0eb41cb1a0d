"""Errors of the training engine that the command line reports as one clean message (no traceback)."""


class RunError(RuntimeError):
    """A run cannot start or continue for a reason the user can fix (message says how)."""
