"""The one error type dreamkit raises for a user's mistake (bad input, bad argument)."""


class DreamkitError(Exception):
    """A problem the user can fix; the CLI prints its message on one line and exits 2."""
