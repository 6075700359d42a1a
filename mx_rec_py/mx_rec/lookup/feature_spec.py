"""``FeatureSpec``: names one sparse feature of a dataset batch and the table it looks up."""
import itertools
import threading
from collections import defaultdict
from typing import Dict, Optional, Union

MAX_NAME_LEN = 255
MAX_INT32 = 2**31 - 1
_counts: Dict[str, "itertools.count"] = defaultdict(itertools.count)
_lock = threading.Lock()


def _check_int(name: str, arg: str, value, low: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_INT32):
        raise ValueError(f"FeatureSpec '{name}': {arg} must be an int in [{low}, {MAX_INT32}], got {value!r}")


def _check_text(name: str, arg: str, value) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_LEN:
        raise ValueError(f"FeatureSpec '{name}': {arg} must be a string of 1 to {MAX_NAME_LEN} characters, "
                         f"got {value!r}")


class FeatureSpec:
    """A sparse feature fed from the input pipeline (Rec SDK "FeatureSpec mode").

    Several specs may share a ``name``: Wide&Deep's wide and deep tables both read
    ``sparse_feature``, and a script that looks one table up several times passes one spec per
    lookup. Each spec still gets its own :attr:`unique_name` (the name itself for the first spec of
    that name in the process, then ``name_1``, ``name_2``, ...), and every spec reads its ids from
    the batch key :attr:`index_key`, which defaults to ``name``.

    Example:
        >>> wide = FeatureSpec("sparse_feature", table_name="wide_embeddings")
        >>> deep = FeatureSpec("sparse_feature", table_name="deep_embeddings")
        >>> (wide.index_key, deep.index_key) == ("sparse_feature", "sparse_feature")
        True

    Args:
        name: the feature's name (1-255 characters).
        table_name: table the feature is looked up in (informative; ``sparse_lookup`` names the table).
        index_key: batch-dict key holding the ids (a string of 1-255 characters or an int in
            [0, 255]); default: ``name``.
        access_threshold: admission count in [0, 2**31 - 1]; -1 or None: no admission.
        eviction_threshold: seconds unseen before eviction, in [0, 2**31 - 1]; -1 or None: never.
        is_timestamp: this feature is the batch's timestamp column, not ids.
        batch_size: rows per batch, in [1, 2**31 - 1], when the pipeline cannot infer it.
        faae_coefficient: weight of each sighting in the admission count, in [1, 2**31 - 1].

    Raises:
        ValueError / TypeError: an argument outside Rec SDK's range, naming the spec and the argument.
    """

    def __init__(self, name: str, table_name: Optional[str] = None, index_key: Optional[Union[str, int]] = None,
                 access_threshold: Optional[int] = None, eviction_threshold: Optional[int] = None,
                 is_timestamp: Optional[bool] = None, batch_size: Optional[int] = None,
                 faae_coefficient: int = 1) -> None:
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_LEN:
            raise ValueError(f"FeatureSpec: name must be a string of 1 to {MAX_NAME_LEN} characters, got {name!r}")
        if table_name is not None:
            _check_text(name, "table_name", table_name)
        if isinstance(index_key, int) and not isinstance(index_key, bool):
            if not 0 <= index_key <= 255:
                raise ValueError(f"FeatureSpec '{name}': an int index_key must be in [0, 255], got {index_key}")
        elif index_key is not None:
            _check_text(name, "index_key", index_key)
        access_threshold = None if access_threshold == -1 else access_threshold
        eviction_threshold = None if eviction_threshold == -1 else eviction_threshold
        _check_int(name, "access_threshold", access_threshold, 0)
        _check_int(name, "eviction_threshold", eviction_threshold, 0)
        _check_int(name, "batch_size", batch_size, 1)
        if faae_coefficient is None:
            raise ValueError(f"FeatureSpec '{name}': faae_coefficient must be an int in [1, {MAX_INT32}], got None")
        _check_int(name, "faae_coefficient", faae_coefficient, 1)
        if is_timestamp is not None and not isinstance(is_timestamp, bool):
            raise TypeError(f"FeatureSpec '{name}': is_timestamp must be True, False or None, got {is_timestamp!r}")
        self.name = name
        self.table_name = table_name
        self.index_key = name if index_key is None else index_key
        self.access_threshold = access_threshold
        self.eviction_threshold = eviction_threshold
        self.is_timestamp = bool(is_timestamp)
        self.batch_size = batch_size
        self.faae_coefficient = faae_coefficient
        with _lock:
            serial = next(_counts[name])
        self.unique_name = name if serial == 0 else f"{name}_{serial}"

    @property
    def label(self) -> str:
        """How messages name this spec: ``name``, and its unique name when that differs."""
        return self.name if self.unique_name == self.name else f"{self.name}' (internal name '{self.unique_name}"

    @property
    def batch_key(self) -> Union[str, int]:
        """Key of this feature's ids in the batch dict (``index_key``)."""
        return self.index_key

    def __repr__(self) -> str:
        return (f"FeatureSpec(name={self.name!r}, table_name={self.table_name!r}, index_key={self.index_key!r}, "
                f"unique_name={self.unique_name!r})")
