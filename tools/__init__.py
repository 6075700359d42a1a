"""The project's tools: data converters and generators (``tools.criteo``), checkpoint export and local
prediction, the accuracy experiments. Run them from the checkout as ``python -m tools.<name>`` or
by path with the project's interpreter (``tools/bootstrap.sh`` puts the checkout on its path)."""
