"""Warm start from several checkpoints, as Rec SDK's custom ``WarmStartSettings`` does.

A script passes TF's own ``tf.estimator.WarmStartSettings`` (Estimator: ``warm_start_from=``) or
calls ``tf.compat.v1.train.warm_start`` (Session and ``MonitoredTrainingSession`` scripts). While
``init()`` is in effect, both accept, besides TF's forms, a list of checkpoints with one selection
per checkpoint::

    tf.estimator.WarmStartSettings(
        ckpt_to_initialize_from=["/ckpt/base", "/ckpt/users"],   # folders (latest checkpoint) or prefixes
        vars_to_warm_start=[".*", ["user_table", "item_.*"]],    # per checkpoint: a regex or a list
        var_name_to_prev_var_name=[{}, {}])                       # per checkpoint (dense variables only)

Per checkpoint, ``vars_to_warm_start`` chooses tables and dense variables:

- a string: the tables of that checkpoint whose name it matches (``re.match``, from the start) are
  warm-started; the dense variables follow TF's rule for a string (a scope regex over
  ``TRAINABLE_VARIABLES``), except when the string matched a table and is not ``".*"``: then it
  names tables only;
- a list of strings: each string that matches a table of that checkpoint chooses tables; the
  others follow TF's rule for a list (scope regexes over ``GLOBAL_VARIABLES``);
- a list of variables, or None: dense variables only, as TF does.

Table variables and their optimizer slots never go to TF's warm start (they are not in TF's
files); their rows, slots and admission counts come from the checkpoint's shards, as a restore
reads them (verified first, on any rank count, into any tier). A table chosen in several
checkpoints takes the last one; dense variables likewise (TF's ``init_from_checkpoint`` keeps the
last initializer). A table of the session that no checkpoint provides starts fresh, and a log
line names it. Table names cannot be mapped (``var_name_to_prev_var_name`` names dense variables).

Dense variables are warm-started by TF (their initializers read the checkpoint); tables are
filled after the session is initialized: by :class:`SparseRestoreHook` (added to every
``Estimator`` ``train``, ``evaluate`` and ``predict`` call by ``init()``; pass it to
``MonitoredTrainingSession`` yourself) or by :func:`warm_start_sparse` in a plain Session.

Example:
    >>> tf.compat.v1.train.warm_start(["/ckpt/a", "/ckpt/b"], [".*", ["user_table"]])  # doctest: +SKIP
    >>> sess.run(tf.compat.v1.global_variables_initializer())                          # doctest: +SKIP
    >>> warm_start_sparse(sess)                                                        # doctest: +SKIP
"""
import inspect
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import tensorflow as tf
from tensorflow.python.training import warm_starting_util

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.saver import checkpoint, layout, unit
from mx_rec.saver.layout import CheckpointError
from mx_rec.saver.table_state import TableState
from mx_rec.system import files as fs
from mx_rec.system.log import logger

_PLAN_ATTR = "_mx_rec_warm_start"  # on the graph: its WarmStartPlan
_original: Dict[str, Any] = {}


@dataclass
class WarmStartPlan:
    """What one graph warm-starts: table name -> checkpoint prefix it comes from (the last one chosen)."""

    sources: Dict[str, str] = field(default_factory=dict)
    applied: bool = False


class WarmStartController:
    """Rec SDK's record of the sparse part of a warm start, for the default graph.

    ``add_element(path, table_list)`` chooses tables of the checkpoint ``path`` (folder or prefix);
    ``get_elements()`` gives checkpoint prefix -> its chosen tables.
    """

    def add_element(self, path: str, table_list: Sequence[str]) -> None:
        prefix = resolve_prefix(path)
        plan = _plan(tf.compat.v1.get_default_graph(), create=True)
        for name in table_list:
            plan.sources[name] = prefix

    def get_elements(self) -> Dict[str, List[str]]:
        plan = _plan(tf.compat.v1.get_default_graph())
        out: Dict[str, List[str]] = {}
        for name, prefix in (plan.sources.items() if plan else ()):
            out.setdefault(prefix, []).append(name)
        return out


def _plan(graph: tf.Graph, create: bool = False) -> Optional[WarmStartPlan]:
    plan = getattr(graph, _PLAN_ATTR, None)
    if plan is None and create:
        plan = WarmStartPlan()
        setattr(graph, _PLAN_ATTR, plan)
    return plan


def resolve_prefix(path: str) -> str:
    """The checkpoint prefix of ``path`` (see ``layout.resolve_prefix``); errors say they come from warm start."""
    try:
        return layout.resolve_prefix(path)
    except CheckpointError as err:
        raise CheckpointError(f"warm start: {err}") from None


def saved_table_names(prefix: str) -> List[str]:
    """Names of the tables the checkpoint ``prefix`` holds (none for a checkpoint without mx_rec tables)."""
    if not fs.isdir(layout.unit_dir(prefix)):
        return []
    return sorted(layout.read_manifest(prefix)["tables"])


def _split(selection, tables: Sequence[str]):
    """(chosen tables, TF's selection of dense variables or ``_NONE`` for none) of one checkpoint's selection."""
    if isinstance(selection, (str, bytes)):
        pattern = selection.decode() if isinstance(selection, bytes) else selection
        chosen = [t for t in tables if re.match(pattern, t)]
        return chosen, (_NONE if chosen and pattern != ".*" else pattern)
    if selection is None:
        return [], None
    selection = list(selection)
    if selection and all(isinstance(s, (str, bytes)) for s in selection):
        chosen, dense = [], []
        for item in selection:
            pattern = item.decode() if isinstance(item, bytes) else item
            matched = [t for t in tables if re.match(pattern, t)]
            chosen += [t for t in matched if t not in chosen]
            if not matched:
                dense.append(pattern)
        return chosen, (dense or _NONE)
    return [], selection


_NONE = object()  # this checkpoint warm-starts no dense variable


def _dense_variables(selection) -> list:
    """TF's choice of variables for ``selection`` (its own rule), without table variables and their slots."""
    sparse = {id(v) for v in ConfigInitializer.get_instance().sparse_variables()}
    grouped = warm_starting_util._get_grouped_variables(selection)  # pylint: disable=protected-access
    out = []
    for variables in grouped.values():
        out += [v for v in variables if id(v) not in sparse]
    return out


def _as_list(value, count: int, what: str) -> list:
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise ValueError(f"warm start from {count} checkpoints: {what} must be a list of {count} entries "
                         f"(one per checkpoint), got {value!r}")
    return list(value)


def warm_start(ckpt_to_initialize_from, vars_to_warm_start=".*", var_name_to_vocab_info=None,
               var_name_to_prev_var_name=None) -> None:
    """``tf.compat.v1.train.warm_start`` with mx_rec's tables, from one checkpoint or several (see the module).

    Args:
        ckpt_to_initialize_from: a checkpoint folder or prefix (str), or a list of them.
        vars_to_warm_start: per checkpoint (a list when there are several) a regex string, a list of
            strings, a list of variables, or None; chooses tables and dense variables (module docstring).
        var_name_to_vocab_info: TF's, for dense variables (shared by every checkpoint).
        var_name_to_prev_var_name: TF's (dense variables), one dict per checkpoint when several.

    Raises:
        ValueError: lists of other lengths, or a table name in ``var_name_to_prev_var_name``.
        CheckpointError: a checkpoint is missing or damaged (every file is verified), naming the file.
    """
    if isinstance(ckpt_to_initialize_from, (list, tuple)):
        count = len(ckpt_to_initialize_from)
        paths = list(ckpt_to_initialize_from)
        selections = _as_list(vars_to_warm_start, count, "vars_to_warm_start")
        renames = (_as_list(var_name_to_prev_var_name, count, "var_name_to_prev_var_name")
                   if var_name_to_prev_var_name is not None else [None] * count)
    else:
        paths, selections, renames = [ckpt_to_initialize_from], [vars_to_warm_start], [var_name_to_prev_var_name]
    config = ConfigInitializer.get_instance()
    session_tables = set(config.tables)
    plan = _plan(tf.compat.v1.get_default_graph(), create=True)
    for path, selection, rename in zip(paths, selections, renames):
        prefix = resolve_prefix(path)
        mapped = sorted(set(rename or {}) & session_tables)
        if mapped:
            raise ValueError(f"warm start from {prefix}: var_name_to_prev_var_name names table(s) {mapped}; "
                             "table names cannot be mapped (a table warm-starts from the table of its own name)")
        saved = saved_table_names(prefix)
        chosen, dense = _split(selection, saved)
        dense_prefix = prefix
        if saved:
            checked = unit.verify(prefix)  # before anything reads it: a damaged file is an error naming it
            dense_prefix = checked.dense_prefix
        for name in chosen:
            if name in session_tables:
                plan.sources[name] = prefix
        if chosen:
            logger.info("warm start: table(s) %s from %s", chosen, prefix)
        if dense is _NONE:
            continue
        variables = None if dense is None else _dense_variables(dense)
        if variables == [] and not rename and not var_name_to_vocab_info:
            continue
        _original["warm_start"](dense_prefix, variables, var_name_to_vocab_info, rename)


def load_tables(prefix: str, names: Sequence[str], checked: Optional[unit.Unit] = None) -> Dict[str, TableState]:
    """Read and check the tables ``names`` of the checkpoint ``prefix`` for the live tables of those names.

    As a restore reads them: every file verified, a checkpoint of N ranks read on M (this rank keeps
    the keys it owns), dims and capacity checked. Changes nothing.

    Raises:
        CheckpointError: a missing or damaged file, a table the checkpoint lacks, another dim, too many keys.
    """
    config = ConfigInitializer.get_instance()
    checked = checked or unit.verify(prefix)
    return {name: checkpoint.load_table(checked, prefix, name, config.tables[name]) for name in names}


def warm_start_sparse(session) -> Dict[str, str]:
    """Fill the session's tables from the checkpoints its graph's warm start chose (once per graph).

    Call after the session's variables are initialized. Every chosen checkpoint is read and checked
    before any table changes. Tables of the graph no checkpoint provides keep their initial values,
    each named in a log line.

    Returns:
        table name -> checkpoint prefix it was filled from (empty when the graph has no warm start).

    Raises:
        CheckpointError: a missing or damaged file, another dim, too many keys; no table has changed.
    """
    plan = _plan(session.graph)
    if plan is None or plan.applied:
        return {}
    with session.graph.as_default():
        tables = ConfigInitializer.get_instance().tables
        by_prefix: Dict[str, List[str]] = {}
        for name, prefix in sorted(plan.sources.items()):
            if name in tables:  # WarmStartController.add_element may name tables this graph lacks
                by_prefix.setdefault(prefix, []).append(name)
        states: Dict[str, TableState] = {}
        for prefix, names in by_prefix.items():
            states.update(load_tables(prefix, names))
        checkpoint.restore_sparse(session, states)
    for name in sorted(set(tables) - set(states)):
        logger.info("warm start: table '%s' is in none of the warm-start checkpoints: it starts fresh", name)
    plan.applied = True
    return {name: prefix for name, prefix in plan.sources.items() if name in states}


class SparseRestoreHook(tf.estimator.SessionRunHook):
    """Fills the tables chosen by the graph's warm start once the session is created (Rec SDK's hook).

    ``init()`` adds one to every ``tf.estimator.Estimator`` ``train``, ``evaluate`` and ``predict`` call; the
    Estimator warm-starts only when ``model_dir`` holds no checkpoint. In a ``MonitoredTrainingSession`` script pass
    ``SparseRestoreHook(checkpoint_dir)`` with its ``checkpoint_dir``: when that folder already holds a
    checkpoint (a resumed job) the tables come from it and the hook does nothing.
    """

    def __init__(self, checkpoint_dir: Optional[str] = None) -> None:
        self._checkpoint_dir = checkpoint_dir
        self._resumed = False

    def begin(self) -> None:
        # decided before the session exists: CheckpointSaverHook saves step 0 as soon as it does
        self._resumed = bool(self._checkpoint_dir and tf.train.latest_checkpoint(self._checkpoint_dir))

    def after_create_session(self, session, coord) -> None:
        if not self._resumed:
            warm_start_sparse(session)


_ESTIMATOR_CALLS = ("train", "evaluate", "predict")  # each warm-starts when model_dir holds no checkpoint


def _with_hook(name: str):
    original = getattr(tf.estimator.Estimator, name)
    signature = inspect.signature(original)

    def call(self, *args, **kwargs):
        if getattr(self, "_warm_start_settings", None) and ConfigInitializer.is_initialized():
            bound = signature.bind(self, *args, **kwargs)
            bound.arguments["hooks"] = list(bound.arguments.get("hooks") or []) + [SparseRestoreHook()]
            return original(*bound.args, **bound.kwargs)
        return original(self, *args, **kwargs)

    call.__doc__ = original.__doc__
    return original, call


def install() -> None:
    """Let TF's warm start (``tf.compat.v1.train.warm_start``, Estimator's ``warm_start_from``) take
    several checkpoints and mx_rec's tables (idempotent; ``init()`` calls it)."""
    if _original:
        return
    _original["warm_start"] = warm_starting_util.warm_start
    warm_starting_util.warm_start = warm_start
    tf.compat.v1.train.warm_start = warm_start
    for name in _ESTIMATOR_CALLS:
        _original[name], replacement = _with_hook(name)
        setattr(tf.estimator.Estimator, name, replacement)


def uninstall() -> None:
    """Put TF's warm start and the Estimator's ``train``, ``evaluate`` and ``predict`` back."""
    if not _original:
        return
    warm_starting_util.warm_start = _original["warm_start"]
    tf.compat.v1.train.warm_start = _original["warm_start"]
    for name in _ESTIMATOR_CALLS:
        setattr(tf.estimator.Estimator, name, _original[name])
    _original.clear()
