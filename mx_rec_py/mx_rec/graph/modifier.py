"""Automatic graph modification ("modify_graph" mode): the user's iterator, rewired by the SDK.

    ids = iterator.get_next()["user_id"]                       # plain tensors, input code untouched
    emb = sparse_lookup(table, ids, modify_graph=True)
    ... loss, optimizers, train_op ...
    modify_graph_and_start_emb_cache()                          # after the model, before the session
    init_op = ConfigInitializer.get_instance().train_params_config.get_initializer(True)

``modify_graph_and_start_emb_cache`` builds pending multi-lookups, traces each modify-graph
lookup's ids back to their ``IteratorGetNext`` and rebuilds that iterator's pipeline with the
lookups' key stages inside (``graph.pipeline``), and the tensors pushed there (``graph.push``:
Rec SDK's slicer and ACG hooks); ``GraphModifierHook`` does the same for
``MonitoredTrainingSession`` / Estimator flows and runs the new initializers.
"""
import os
from typing import Dict, List, Optional

import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.graph.pipeline import rebuild_pipeline
from mx_rec.graph.push import mark_moved, pushed_tensors
from mx_rec.lookup.key_stage import KeyStage, recorded_stages
from mx_rec.lookup.merge import build_pending_lookups
from mx_rec.lookup.trace import iterator_source
from mx_rec.system.log import logger

DUMP_DIR_ENV = "MXREC_GRAPH_DUMP_DIR"


def _dump(graph: tf.Graph, name: str) -> str:
    folder = os.environ.get(DUMP_DIR_ENV, os.path.join(os.getcwd(), "mx_rec_graph"))
    os.makedirs(folder, exist_ok=True)
    return tf.io.write_graph(graph.as_graph_def(), folder, name, as_text=True)


def modify_graph_and_start_emb_cache(full_graph: Optional[tf.Graph] = None, dump_graph: bool = False) -> List:
    """Move the key processing of every ``modify_graph=True`` lookup into rebuilt input pipelines.

    Afterwards ``ConfigInitializer.get_instance().train_params_config.get_initializer(is_training)``
    is the rebuilt iterator's initializer (run it instead of the old one) and ``.get_target_batch``
    its batch. With ``dump_graph=True`` the graph is written before and after as text protobuf
    (``graph_before_modify.pbtxt`` / ``graph_after_modify.pbtxt``) under ``$MXREC_GRAPH_DUMP_DIR``
    (default ``./mx_rec_graph``).

    Returns:
        the rebuilt pipelines (``graph.pipeline.RebuiltPipeline``), one per iterator.

    Raises:
        ValueError: a lookup's ids do not come from an initializable dataset iterator.
    """
    graph = full_graph or tf.compat.v1.get_default_graph()
    if dump_graph:
        logger.info("graph before modification: %s", _dump(graph, "graph_before_modify.pbtxt"))
    build_pending_lookups(graph)
    by_iterator: Dict[tf.Operation, List[KeyStage]] = {}
    for stage in recorded_stages(graph):
        if stage.modify_graph and not stage.moved:
            source = iterator_source(stage.keys, f"table '{stage.table_name}'")
            by_iterator.setdefault(source, []).append(stage)
    if not by_iterator:
        logger.warning("modify_graph_and_start_emb_cache: no sparse_lookup(..., modify_graph=True) in the graph")
    pushed: Dict[tf.Operation, List[tf.Tensor]] = {}
    for tensor in pushed_tensors(graph):
        pushed.setdefault(iterator_source(tensor, f"tensor '{tensor.name}'"), []).append(tensor)
    for source in set(pushed) - set(by_iterator):
        logger.info("modify_graph: %s stay in the step: iterator %s feeds no modify_graph lookup, so its pipeline "
                    "is not rebuilt", sorted(t.name for t in pushed[source]), source.name)
    config = ConfigInitializer.get_instance().train_params_config
    rebuilt = []
    with graph.as_default():
        for source, stages in by_iterator.items():
            pipeline = rebuild_pipeline(source, stages, pushed.get(source, ()))
            mark_moved(graph, pushed.get(source, []))
            config.set_initializer(pipeline.is_training, pipeline.initializer)
            config.set_target_batch(pipeline.is_training, pipeline.batch)
            rebuilt.append(pipeline)
            logger.info("modify_graph: %d key stage(s) of %s moved into a rebuilt pipeline of iterator %s",
                        len(stages), sorted({s.table_name for s in stages}), source.name)
    if dump_graph:
        logger.info("graph after modification: %s", _dump(graph, "graph_after_modify.pbtxt"))
    return rebuilt


class GraphModifierHook(tf.compat.v1.train.SessionRunHook):
    """Runs graph modification when a ``MonitoredSession`` begins, and the rebuilt iterators'
    initializers once its session exists.

    Args:
        dump_graph: write the graph before and after (see ``modify_graph_and_start_emb_cache``).
        modify_graph: False leaves the graph alone (the hook then does nothing).
    """

    def __init__(self, dump_graph: bool = False, modify_graph: bool = True) -> None:
        self._dump_graph = dump_graph
        self._modify_graph = modify_graph
        self._initializers: List[tf.Operation] = []

    def begin(self) -> None:
        if self._modify_graph:
            modify_graph_and_start_emb_cache(dump_graph=self._dump_graph)
            # also the pipelines of an explicit earlier call: the session this hook serves must start them
            self._initializers = ConfigInitializer.get_instance().train_params_config.registered_initializers()

    def after_create_session(self, session: tf.compat.v1.Session, coord) -> None:
        # an Estimator builds a graph per train/evaluate/predict: initializers of earlier graphs are not ours
        initializers = [op for op in self._initializers if op.graph is session.graph]
        if initializers:
            session.run(initializers)
