"""The one error type of the launcher: a bad argument, file or switch, found before any process starts."""


class LaunchError(ValueError):
    """A launch that must not start; ``str(err)`` names the argument, file or switch at fault."""
