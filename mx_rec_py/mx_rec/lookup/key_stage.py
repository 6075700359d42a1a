"""The stateless first step of a lookup ("key stage"), kept apart so that graph modification can
move it into the input pipeline.

A key stage is a numpy function of the lookup's flat keys only (dedup, or routing keys to their
owner ranks): it reads no table state, so it may run ahead of the training step, in the
``tf.data`` threads, while the previous step trains (a DDR/SSD table's dedup stage also publishes
the batch's keys, so that the table can place them ahead: ``key_process.lookahead``). Every
stage is recorded in its graph's registry (``config.graph_registry``); the ones of
``sparse_lookup(..., modify_graph=True)`` lookups refuse to run in place: graph modification
(``mx_rec.graph.modifier``) must first rewire their outputs to the rebuilt pipeline.
"""
from dataclasses import dataclass, field
from typing import Callable, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from mx_rec.config.graph_registry import find_registry, registry_of
from mx_rec.key_process.dedup import dedup


@dataclass(eq=False)
class KeyStage:
    """One recorded key stage.

    Attributes:
        table_name: table of the lookup. keys: int64 [N], the stage's only input.
        fn: keys int64 [N] (numpy) -> tuple of arrays with ``dtypes``.
        outputs: the stage's tensors in the graph (their consumers are what modification rewires).
        modify_graph: made by a ``modify_graph=True`` lookup. insert: a training lookup's stage.
        moved: rewired to a rebuilt pipeline.
    """

    table_name: str
    keys: tf.Tensor
    fn: Callable[[np.ndarray], tuple]
    dtypes: List[tf.DType]
    modify_graph: bool
    insert: bool
    outputs: List[tf.Tensor] = field(default_factory=list)
    moved: bool = False


def key_stage(table_name: str, fn: Callable[[np.ndarray], tuple], keys: tf.Tensor, dtypes: Sequence[tf.DType],
              modify_graph: bool, insert: bool, name: str) -> List[tf.Tensor]:
    """Run ``fn`` on ``keys`` (int64 [N]) as a ``numpy_function`` and record it; returns its outputs."""
    stage = KeyStage(table_name, keys, fn, list(dtypes), modify_graph, insert)

    def run(keys_np: np.ndarray) -> tuple:
        if stage.modify_graph and not stage.moved:
            raise RuntimeError(
                f"table '{table_name}': a sparse_lookup(..., modify_graph=True) ran before graph modification; "
                "call mx_rec.graph.modifier.modify_graph_and_start_emb_cache() after building the model and "
                "before starting the session (or pass GraphModifierHook() to the session), then run the "
                "initializer from ConfigInitializer.get_instance().train_params_config.get_initializer()")
        return fn(keys_np)

    outputs = tf.numpy_function(run, [keys], list(dtypes), stateful=True, name=name)
    stage.outputs = list(outputs)
    registry_of(keys.graph).key_stages.append(stage)
    return stage.outputs


def dedup_stage(keys_np: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The dedup key stage: (unique int64 [U], inverse int32 [N] (padding -> U), counts int64 [U])."""
    unique, inverse, counts = dedup(keys_np)
    return unique, inverse, counts.astype(np.int64)


DEDUP_DTYPES = [tf.int64, tf.int32, tf.int64]


def recorded_stages(graph: tf.Graph) -> List[KeyStage]:
    """The key stages made in ``graph``, in creation order."""
    registry = find_registry(graph)
    return list(registry.key_stages) if registry is not None else []
