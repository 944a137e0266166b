"""The error type dreamkit raises for a user's mistake (bad input, bad argument), and its
kind for an optimization that diverged."""


class DreamkitError(Exception):
    """A problem the user can fix; the CLI prints its message on one line and exits 2."""


class DivergedError(DreamkitError):
    """The loss or the gradient became NaN or infinite; the image is dropped, never written."""
