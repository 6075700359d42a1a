"""Door kept for Rec SDK scripts: ``FeatureSpec`` and ``get_asc_insert_func``."""
from mx_rec.lookup.feature_spec import FeatureSpec  # noqa: F401
from mx_rec.lookup.input_pipeline import make_insert_func
from mx_rec.system.log import log_once


def get_asc_insert_func(tgt_key_specs=None, args_index_list=None, table_names=None, **kwargs):
    """A ``dataset.map`` function for FeatureSpec mode (Rec SDK signature).

    Args:
        tgt_key_specs: a FeatureSpec or a list of them. args_index_list / table_names: not supported
            (pass FeatureSpecs). is_training (kwarg): True for the train pipeline. dump_graph: accepted, unused.
            Other keywords are ignored (as Rec SDK documents), logged once.
    """
    if args_index_list is not None or table_names is not None:
        raise NotImplementedError("get_asc_insert_func: args_index_list/table_names mode is not supported; "
                                  "pass tgt_key_specs=[FeatureSpec(...)]")
    unknown = sorted(set(kwargs) - {"is_training", "dump_graph"})
    if unknown:  # Rec SDK documents that it ignores undocumented keywords
        log_once(f"insert_func_kwargs:{unknown}", f"get_asc_insert_func: keyword(s) {unknown} are not used")
    return make_insert_func(tgt_key_specs, is_training=kwargs.get("is_training", True))
