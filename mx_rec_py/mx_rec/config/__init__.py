"""Process-wide SDK configuration set by ``init()``."""
