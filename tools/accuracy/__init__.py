"""The model zoo's accuracy experiments (``python -m tools.accuracy.accuracy``)."""
