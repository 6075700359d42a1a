"""``FeatureSpec``: names one sparse feature of a dataset batch and the table it looks up."""
from typing import Optional, Union


class FeatureSpec:
    """A sparse feature fed from the input pipeline (Rec SDK "FeatureSpec mode").

    Args:
        name: the feature's name; also the batch-dict key of its ids unless ``index_key`` is given.
        table_name: table the feature is looked up in (informative; ``sparse_lookup`` names the table).
        index_key: batch-dict key holding the ids, when it differs from ``name``.
        access_threshold: admission count (feature-lifecycle switch; see ``access_and_evict_config``).
        eviction_threshold: seconds unseen before eviction.
        is_timestamp: this feature is the batch's timestamp column, not ids.
        batch_size: rows per batch, when the pipeline cannot infer it.
        faae_coefficient: weight of each sighting in the admission count.
    """

    def __init__(self, name: str, table_name: Optional[str] = None, index_key: Optional[Union[str, int]] = None,
                 access_threshold: Optional[int] = None, eviction_threshold: Optional[int] = None,
                 is_timestamp: Optional[bool] = None, batch_size: Optional[int] = None,
                 faae_coefficient: int = 1) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"FeatureSpec: name must be a non-empty string, got {name!r}")
        for arg, value in (("access_threshold", access_threshold), ("eviction_threshold", eviction_threshold),
                           ("batch_size", batch_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"FeatureSpec '{name}': {arg} must be a non-negative int, got {value!r}")
        if isinstance(faae_coefficient, bool) or not isinstance(faae_coefficient, int) or faae_coefficient < 1:
            raise ValueError(f"FeatureSpec '{name}': faae_coefficient must be an int >= 1, got {faae_coefficient!r}")
        self.name = name
        self.table_name = table_name
        self.index_key = index_key
        self.access_threshold = access_threshold
        self.eviction_threshold = eviction_threshold
        self.is_timestamp = bool(is_timestamp)
        self.batch_size = batch_size
        self.faae_coefficient = faae_coefficient

    @property
    def batch_key(self) -> Union[str, int]:
        """Key of this feature's ids in the batch dict."""
        return self.name if self.index_key is None else self.index_key

    def __repr__(self) -> str:
        return f"FeatureSpec(name={self.name!r}, table_name={self.table_name!r}, index_key={self.index_key!r})"
