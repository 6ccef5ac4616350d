"""The errors cream raises for bad input or bad state: each names the file, line or key and what to do.

``cream-train`` prints them as one message (no traceback) and exits with status 2; anything else is a
bug and keeps its traceback.
"""


class CreamError(Exception):
    """Base class of the user-facing errors."""
