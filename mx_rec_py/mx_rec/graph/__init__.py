"""Graph rewriting: one pass a module, applied by an explicit call (``modifier``)."""
