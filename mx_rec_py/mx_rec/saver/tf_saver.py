"""Teach ``tf.compat.v1.train.Saver`` about sparse tables (installed by ``init()``, removed on terminate).

While installed:
- a Saver's variables leave out table variables and their optimizer slots (their rows only make
  sense with the host key index, so they are saved in mx_rec's own layout instead, and restore on
  any rank count or tier);
- ``save`` writes one unit (``checkpoint.py``): every rank its shards (call it on every rank), then
  rank 0 lets TF write its files (dense variables are equal on every rank), completes the unit,
  and only then writes TF's ``checkpoint`` state file and deletes checkpoints past max_to_keep;
- ``restore`` verifies every file of the unit (``unit.verify``), lets TF restore the dense
  variables of that unit, then loads the tables.

Both take every argument TF's own Saver takes, in the same forms: ``global_step`` as a Python or
numpy integer, a tensor, a variable or a tensor name (``MonitoredTrainingSession`` passes the numpy
value it fetched); ``save_path`` as ``str`` or ``bytes``; ``latest_filename``, ``meta_graph_suffix``,
``write_meta_graph``, ``write_state``, ``strip_default_attrs``, ``save_debug_info`` by position or
keyword; and Rec SDK's ``is_incremental_checkpoint`` / ``save_delta`` (``save_delta=True`` writes a
delta checkpoint, ``delta.py``; a restore of a delta reads its chain, and with incremental checkpoints
on, ``restore_model_version`` picks the step). What TF refuses (``restore(sess, None)``, a
``latest_filename`` with a folder in it) fails with TF's own error, before anything is written.
"""
import os

import tensorflow as tf
from tensorflow.python.checkpoint import checkpoint_management
from tensorflow.python.training import training_util
from tensorflow.python.util import compat

from mx_rec.communication import collectives
from mx_rec.config.initializer import ConfigInitializer
from mx_rec.constants.constants import DELTA_MODEL
from mx_rec.key_process import changes
from mx_rec.saver import delta, delta_schedule, layout, save_timer, unit, warm_start
from mx_rec.saver.checkpoint import load_sparse, remove_orphans, restore_sparse, save_sparse, saved_tables
from mx_rec.saver.table_state import collect
from mx_rec.system import files as fs

_Saver = tf.compat.v1.train.Saver
_original = {}


def _without_tables(var_list):
    excluded = {id(v) for v in ConfigInitializer.get_instance().sparse_variables()}
    if var_list is None:
        var_list = (tf.compat.v1.global_variables()
                    + tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.SAVEABLE_OBJECTS))
    if isinstance(var_list, dict):
        return {name: v for name, v in var_list.items() if id(v) not in excluded}
    return [v for v in var_list if id(v) not in excluded]


def _init(self, var_list=None, *args, **kwargs):
    self._mxrec_barrier = None
    self._mxrec_deferred = False
    if ConfigInitializer.is_initialized() and kwargs.get("saver_def") is None:
        if var_list is None and kwargs.get("defer_build"):
            self._mxrec_deferred = True  # TF takes the variables at build() (Estimator's scaffold does this)
        else:
            var_list = _without_tables(var_list)
            if not var_list:
                kwargs["allow_empty"] = True
        if ConfigInitializer.get_instance().rank_size > 1:
            # Built now: the graph may be finalized by the time save() runs. The input is fed, not a
            # constant: TF folds an all-reduce of a constant after its first run, and it stops waiting.
            token = tf.compat.v1.placeholder(tf.int32, [], name="mxrec_save_barrier_token")
            self._mxrec_barrier = (token, collectives.allreduce(token, "sum", name="mxrec_save_barrier"))
        if ConfigInitializer.get_instance().is_incremental_checkpoint:
            delta.prepare_readers()  # a delta reads changed rows by gather: ops built before the graph is final
    _original["__init__"](self, var_list, *args, **kwargs)


def _build(self):
    if getattr(self, "_mxrec_deferred", False) and self._var_list is None and ConfigInitializer.is_initialized():
        self._var_list = _without_tables(None)
        if not self._var_list:
            self._allow_empty = True
    return _original["build"](self)


def _prefix(self, sess, save_path: str, global_step):
    """The prefix TF is about to write, exactly as TF names it, and its step (int or None)."""
    if global_step is None:
        return save_path, None
    # TF's own test: any integral value, numpy's included, is the step itself; anything else is fetched
    step = global_step if isinstance(global_step, compat.integral_types) else training_util.global_step(
        sess, global_step)
    step = int(step)
    return (f"{save_path}-{step:08d}" if self._pad_step_number else f"{save_path}-{step}"), step


def _save(self, sess, save_path, global_step=None, latest_filename=None, meta_graph_suffix="meta",
          write_meta_graph=True, write_state=True, strip_default_attrs=False, save_debug_info=False,
          is_incremental_checkpoint=False, save_delta=False):
    tf_args = (meta_graph_suffix, write_meta_graph)
    tf_kwargs = {"strip_default_attrs": strip_default_attrs, "save_debug_info": save_debug_info}
    if not ConfigInitializer.is_initialized():
        if is_incremental_checkpoint or save_delta:
            raise ValueError("Saver.save(save_delta=True): delta checkpoints need mx_rec's init("
                             "is_incremental_checkpoint=True, ...)")
        return _original["save"](self, sess, save_path, global_step, latest_filename, *tf_args, write_state,
                                 **tf_kwargs)
    if latest_filename is not None and os.path.split(latest_filename)[0]:
        raise ValueError("'latest_filename' must not contain path components")  # TF's check, before any write
    save_path = compat.as_str(save_path)
    prefix, step = _prefix(self, sess, save_path, global_step)
    is_incremental_checkpoint, save_delta = delta_schedule.pending_kind(is_incremental_checkpoint, save_delta)
    kind = delta.save_kind(is_incremental_checkpoint, save_delta)
    extra = delta.delta_manifest(prefix, step) if kind == DELTA_MODEL else ({delta.KIND: kind} if kind else None)
    collect_state = {DELTA_MODEL: delta.collect_delta, None: collect}.get(kind, delta.collect_base)
    barrier = _barrier(self, sess)
    result = []

    def write_dense():  # TF's files; its 'checkpoint' file only once the unit is complete
        result.append(_original["save"](self, sess, save_path, global_step, latest_filename, *tf_args, False,
                                        **tf_kwargs))

    try:
        written = save_sparse(sess, prefix, step, barrier, write_dense, _dense_bytes(self), collect_state, extra)
    except BaseException:
        if kind is not None:
            delta.failed()
        raise
    if kind is not None:
        delta.saved(prefix)
    if ConfigInitializer.get_instance().rank_id != 0:
        barrier()  # rank 0 writes TF's state file: wait, so latest_checkpoint() names this save on every rank
        return prefix  # dense variables are equal on every rank: rank 0 writes TF's files
    try:
        if write_state and result[0] is not None:
            try:
                _write_state(self, save_path, result[0], latest_filename, meta_graph_suffix,
                             prune=kind != DELTA_MODEL)
            except (OSError, tf.errors.OpError) as err:
                if not unit.is_disk_full(err):
                    raise
                raise unit.disk_full(os.path.join(os.path.dirname(save_path), latest_filename or "checkpoint"),
                                     4096, err, f"checkpoint {prefix} is complete, but TF's 'checkpoint' file "
                                     "still names the previous one") from None
        remove_orphans(os.path.dirname(fs.abspath(prefix)), keep=fs.abspath(written))
    finally:
        barrier()
    return prefix if result[0] is None else result[0]


def _write_state(self, save_path, path, latest_filename, meta_graph_suffix, prune=True):
    """What TF's Saver.save does with write_state=True, after the unit is complete. ``prune`` False (a delta):
    max_to_keep deletes nothing now, so that no link of the chain being written goes; the next base prunes."""
    self._RecordLastCheckpoint(path)
    checkpoint_management.update_checkpoint_state_internal(
        save_dir=os.path.dirname(save_path), model_checkpoint_path=path,
        all_model_checkpoint_paths=self.last_checkpoints, latest_filename=latest_filename,
        save_relative_paths=self._save_relative_paths)
    if prune:
        self._MaybeDeleteOldCheckpoints(meta_graph_suffix=meta_graph_suffix)


def _dense_bytes(self) -> int:
    """About how many bytes TF writes for this Saver's variables."""
    variables = self._var_list.values() if isinstance(self._var_list, dict) else (self._var_list or [])
    total = 0
    for v in variables:
        try:
            total += v.shape.num_elements() * v.dtype.size
        except (AttributeError, TypeError, ValueError):
            pass
    return total


def _barrier(self, sess):
    if getattr(self, "_mxrec_barrier", None) is None:
        return lambda: None
    token, barrier = self._mxrec_barrier
    return lambda: sess.run(barrier, {token: 1})


def _restore(self, sess, save_path):
    if not ConfigInitializer.is_initialized() or save_path is None:
        return _original["restore"](self, sess, save_path)  # None: TF's ValueError
    save_path = delta.versioned(compat.as_str(save_path))
    has_sparse = fs.isdir(layout.unit_dir(save_path))
    if not has_sparse and not self._is_empty and not checkpoint_management.checkpoint_exists_internal(save_path):
        raise ValueError(f"The passed save_path is not a valid checkpoint: {save_path}")  # TF's words
    states, dense_prefix, checked = {}, save_path, None
    if saved_tables() or has_sparse:
        checked = unit.verify(save_path)  # names the missing or damaged file of the unit
        load = delta.load_chain if delta.is_delta(checked.manifest) else load_sparse
        states, dense_prefix = load(save_path, checked), checked.dense_prefix
    _original["restore"](self, sess, dense_prefix)
    _initialize_unrestored(sess, states)
    restore_sparse(sess, states)
    if checked is not None and ConfigInitializer.get_instance().is_incremental_checkpoint:
        delta.restored(save_path, checked.manifest)
    return None


def _initialize_unrestored(sess, states) -> None:
    """Initialize the device variables (and slots) that restoring leaves alone: a DDR/SSD table's device
    cache (its restored keys start on the host) and tables the checkpoint does not hold. A session made
    by restoring (MonitoredTrainingSession, every Estimator call) runs no init op, and TF's readiness
    check would then find them uninitialized."""
    tables = [t for t in ConfigInitializer.get_instance().tables.values()
              if t.variable.graph is sess.graph and (not t.backend.restores_device or t.table_name not in states)]
    ops = [t.variable.initializer for t in tables] + [slot.initializer for t in tables for slot, _ in t.slots.values()]
    if ops:
        sess.run(ops)


def install() -> None:
    """Patch the Saver class, ``CheckpointSaverHook``'s time-based saves (``save_timer``) and TF's warm start
    (``warm_start``) (idempotent). With ``init(is_incremental_checkpoint=True)`` tables start tracking what
    changed (``key_process.changes``)."""
    changes.enable(ConfigInitializer.get_instance().is_incremental_checkpoint)
    save_timer.install()
    warm_start.install()
    if _original:
        return
    for name, replacement in (("__init__", _init), ("build", _build), ("save", _save), ("restore", _restore)):
        _original[name] = getattr(_Saver, name)
        setattr(_Saver, name, replacement)


def uninstall() -> None:
    """Put the Saver class (and ``CheckpointSaverHook``) back as TensorFlow defines them."""
    save_timer.uninstall()
    changes.enable(False)
    warm_start.uninstall()
    for name, original in _original.items():
        setattr(_Saver, name, original)
    _original.clear()
