"""Door kept for Rec SDK scripts: ``create_table`` and ``sparse_lookup``."""
from mx_rec.lookup.sparse_lookup import sparse_lookup  # noqa: F401
from mx_rec.tables.factory import create_table  # noqa: F401
