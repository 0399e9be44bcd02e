"""The one exception a user sees: a one-line message saying what was wrong and what to do."""

__all__ = ["ClockpropError"]


class ClockpropError(Exception):
    """A problem with the user's input or environment; the CLI prints it without a traceback."""
