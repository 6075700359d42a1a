"""Door kept for Rec SDK scripts: ``import_host_pipeline_ops(so_pkg_name=LIBASC_OPS_SO)``.

Example:
    >>> from mx_rec.constants.constants import LIBREC_EOS_OPS_SO
    >>> librec = import_host_pipeline_ops(LIBREC_EOS_OPS_SO)        # doctest: +SKIP
    >>> op = librec.set_threshold(tf.constant(2), emb_name=["user_table"], ids_name=["user_ids"])  # doctest: +SKIP
"""
from mx_rec.lookup.host_ops import (HostPipelineOps, clear_channel, import_host_pipeline_ops,  # noqa: F401
                                    return_timestamp, set_threshold)

__all__ = ["HostPipelineOps", "import_host_pipeline_ops", "return_timestamp", "set_threshold", "clear_channel"]
