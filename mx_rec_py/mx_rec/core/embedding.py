"""Door kept for Rec SDK scripts: ``create_table`` and ``sparse_lookup``."""
import inspect
from typing import Any, Optional

import tensorflow as tf

from mx_rec.lookup import sparse_lookup as _lookup_module
from mx_rec.tables.factory import create_table  # noqa: F401
from mx_rec.util.log import logger

# keywords Rec SDK documents as internal (its graph modifier passes them); they mean nothing here
_REC_SDK_INTERNAL = ("feature_spec_name_ids_dict", "multi_lookup", "lookup_ids")
_logged = set()


def sparse_lookup(hashtable, ids, send_count: Optional[int] = None, is_train: bool = True, name: Optional[str] = None,
                  modify_graph: bool = False, batch=None, access_and_evict_config: Optional[dict] = None,
                  is_grad: bool = True, serving_default_value=None, **kwargs: Any) -> tf.Tensor:
    """Rec SDK's ``sparse_lookup`` (see ``mx_rec.lookup.sparse_lookup.sparse_lookup`` for the arguments).

    ``**kwargs``: keywords of mx_rec's lookup (``dim``) are passed on; Rec SDK's internal ones
    (``feature_spec_name_ids_dict``, ``multi_lookup``, ``lookup_ids``) and any other are ignored, as
    Rec SDK ignores undocumented ones, with one log line naming them.

    Example:
        >>> emb = sparse_lookup(table, feature_spec, send_count=6000, is_train=True, name="emb")  # doctest: +SKIP
    """
    lookup = _lookup_module.sparse_lookup
    accepted = set(inspect.signature(lookup).parameters)
    ignored = sorted(set(kwargs) - accepted)
    if ignored and tuple(ignored) not in _logged:
        _logged.add(tuple(ignored))
        internal = [k for k in ignored if k in _REC_SDK_INTERNAL]
        logger.warning("sparse_lookup: keyword(s) %s ignored (%s)", ignored,
                       "Rec SDK-internal" if internal == ignored else "not used by mx_rec, as Rec SDK ignores them")
    passed = {k: v for k, v in kwargs.items() if k in accepted}
    return lookup(hashtable, ids, send_count=send_count, is_train=is_train, name=name, modify_graph=modify_graph,
                  batch=batch, access_and_evict_config=access_and_evict_config, is_grad=is_grad,
                  serving_default_value=serving_default_value, **passed)
