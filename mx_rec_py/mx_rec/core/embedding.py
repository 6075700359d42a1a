"""Door kept for Rec SDK scripts: ``create_table`` and ``sparse_lookup``.

``sparse_lookup`` takes Rec SDK's keywords; its internal ones (``feature_spec_name_ids_dict``,
``multi_lookup``, ``lookup_ids``) and any other undocumented keyword are ignored, logged once.
"""
from mx_rec.lookup.sparse_lookup import sparse_lookup  # noqa: F401
from mx_rec.tables.factory import create_table  # noqa: F401
