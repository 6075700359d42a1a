"""Door kept for Rec SDK scripts: ``from mx_rec.graph.merge_lookup import do_merge_lookup``."""
from mx_rec.lookup.merge import build_pending_lookups


def do_merge_lookup(is_train: bool = True) -> None:
    """Merge the recorded multi-lookups of each table now (call before ``tf.gradients``).

    Hash optimizers' ``compute_gradients`` (so ``minimize``) and graph modification do it already; a
    script computing gradients with ``tf.gradients`` calls this first, as in Rec SDK. Only training
    lookups are merged (``is_train=False`` has nothing to merge).

    Example:
        >>> do_merge_lookup(is_train=True)                       # doctest: +SKIP
        >>> grads = tf.gradients(loss, sparse_variables)        # doctest: +SKIP

    Raises:
        ValueError: ``is_train`` is not a bool.
    """
    if not isinstance(is_train, bool):
        raise ValueError(f"do_merge_lookup: is_train must be True or False, got {is_train!r}")
    if is_train:
        build_pending_lookups()
