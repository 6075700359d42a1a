"""Door kept for Rec SDK scripts: ``EvictHook``."""
from mx_rec.tables.eviction import EvictHook  # noqa: F401
