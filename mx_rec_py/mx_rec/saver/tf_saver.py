"""Teach ``tf.compat.v1.train.Saver`` about sparse tables (installed by ``init()``, removed on terminate).

While installed:
- a Saver's variables leave out table variables and their optimizer slots (their rows only make
  sense with the host key index, so they are saved in mx_rec's own layout instead, and restore on
  any rank count or tier);
- ``save`` first writes the sparse part beside the prefix TF is about to write (every rank its
  shard; call it on every rank), then lets TF write its files and the ``checkpoint`` state file
  (on rank 0 only: dense variables are equal on every rank);
- ``restore`` reads and checks the sparse part, lets TF restore the dense variables, then loads
  the tables.
"""
import os

import tensorflow as tf
from tensorflow.python.training import training_util

from mx_rec.communication import collectives
from mx_rec.config.initializer import ConfigInitializer
from mx_rec.saver import layout
from mx_rec.saver.checkpoint import load_sparse, remove_orphans, restore_sparse, save_sparse, saved_tables

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
    if ConfigInitializer.is_initialized() and kwargs.get("saver_def") is None:
        var_list = _without_tables(var_list)
        if not var_list:
            kwargs["allow_empty"] = True
        if ConfigInitializer.get_instance().rank_size > 1:
            # Built now: the graph may be finalized by the time save() runs. The input is fed, not a
            # constant: TF folds an all-reduce of a constant after its first run, and it stops waiting.
            token = tf.compat.v1.placeholder(tf.int32, [], name="mxrec_save_barrier_token")
            self._mxrec_barrier = (token, collectives.allreduce(token, "sum", name="mxrec_save_barrier"))
    _original["__init__"](self, var_list, *args, **kwargs)


def _prefix(self, sess, save_path, global_step):
    if global_step is None:
        return save_path, None
    step = global_step if isinstance(global_step, int) else training_util.global_step(sess, global_step)
    return (f"{save_path}-{step:08d}" if self._pad_step_number else f"{save_path}-{step}"), int(step)


def _save(self, sess, save_path, global_step=None, *args, **kwargs):
    if not ConfigInitializer.is_initialized():
        return _original["save"](self, sess, save_path, global_step, *args, **kwargs)
    prefix, step = _prefix(self, sess, save_path, global_step)
    barrier = _barrier(self, sess)
    written = save_sparse(sess, prefix, step, barrier)
    if ConfigInitializer.get_instance().rank_id != 0:
        return prefix  # dense variables are equal on every rank: rank 0 writes TF's files
    result = _original["save"](self, sess, save_path, global_step, *args, **kwargs)
    remove_orphans(os.path.dirname(os.path.abspath(prefix)), keep=os.path.abspath(written))
    return prefix if result is None else result


def _barrier(self, sess):
    if getattr(self, "_mxrec_barrier", None) is None:
        return lambda: None
    token, barrier = self._mxrec_barrier
    return lambda: sess.run(barrier, {token: 1})


def _restore(self, sess, save_path):
    if not ConfigInitializer.is_initialized():
        return _original["restore"](self, sess, save_path)
    has_sparse = os.path.isdir(layout.sparse_dir(save_path))
    states = load_sparse(save_path) if (saved_tables() or has_sparse) else {}
    _original["restore"](self, sess, save_path)
    restore_sparse(sess, states)
    return None


def install() -> None:
    """Patch the Saver class (idempotent)."""
    if _original:
        return
    for name, replacement in (("__init__", _init), ("save", _save), ("restore", _restore)):
        _original[name] = getattr(_Saver, name)
        setattr(_Saver, name, replacement)


def uninstall() -> None:
    """Put the Saver class back as TensorFlow defines it."""
    for name, original in _original.items():
        setattr(_Saver, name, original)
    _original.clear()
