"""Door kept for Rec SDK scripts: ``get_dense_and_sparse_variable``."""
from typing import List, Tuple

import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.constants.constants import ASCEND_GLOBAL_HASHTABLE_COLLECTION
from mx_rec.lookup.merge import build_pending_lookups


def get_dense_and_sparse_variable() -> Tuple[List[tf.Variable], List[tf.Variable]]:
    """(dense trainable variables, sparse table variables) of the default graph.

    Table variables are not trainable, so a dense optimizer over the first list never touches them;
    give the second list to a hash optimizer. Builds pending multi-lookups first (their
    gradients must flow once the caller builds the train op).
    """
    build_pending_lookups()
    collection = ASCEND_GLOBAL_HASHTABLE_COLLECTION
    if ConfigInitializer.is_initialized():
        collection = ConfigInitializer.get_instance().train_params_config.ascend_global_hashtable_collection
    return tf.compat.v1.trainable_variables(), tf.compat.v1.get_collection(collection)
