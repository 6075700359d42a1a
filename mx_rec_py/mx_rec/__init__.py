"""mx_rec: Rec SDK programming model on CPUs and GPUs."""
__version__ = "0.1.0"


def version() -> str:
    """The version of mx_rec (``mx_rec.version()``, as in Rec SDK; also ``mx_rec.__version__``)."""
    return __version__
