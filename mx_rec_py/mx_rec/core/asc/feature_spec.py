"""Door kept for Rec SDK scripts: ``FeatureSpec``."""
from mx_rec.lookup.feature_spec import FeatureSpec  # noqa: F401
