"""Time-based checkpoints on several ranks: every rank saves at the same step.

A sparse save is collective (every rank writes its shard, then they wait for each other), but
``CheckpointSaverHook(save_secs=...)`` (what ``MonitoredTrainingSession(save_checkpoint_secs=...)``
and ``tf.estimator.Estimator``'s default ``save_checkpoints_secs=600`` use) decides on each rank's
own clock: one rank would start a save at step 41 while another trains step 42, and both would
wait forever. While installed (by ``init()``, through ``tf_saver.install``) and the job has
several ranks, a time-based hook asks all ranks each step and saves when any rank's clock says
so (an all-reduce ``max`` of one int32). Step-based hooks already agree and are left alone. With
incremental checkpoints on, every hook saves bases and deltas instead (``delta_schedule``).
"""
from typing import Any, Dict

import tensorflow as tf
from tensorflow.python.training import basic_session_run_hooks

from mx_rec.communication import collectives
from mx_rec.config.initializer import ConfigInitializer
from mx_rec.saver import delta_schedule

_Hook = basic_session_run_hooks.CheckpointSaverHook
_original: Dict[str, Any] = {}


class AgreedTimer:
    """Wraps a ``SecondOrStepTimer``: ``should_trigger_for_step`` is True on every rank when it is True
    on any; every other method is the wrapped timer's. Call on every rank, the same number of times."""

    def __init__(self, timer, token: tf.Tensor, agreed: tf.Tensor) -> None:
        self._timer = timer
        self._token = token
        self._agreed = agreed
        self.session = None  # set before each use by the hook's after_run

    def should_trigger_for_step(self, step: int) -> bool:
        local = bool(self._timer.should_trigger_for_step(step))
        if self.session is None:  # outside after_run (no session to agree in): the local answer
            return local
        return bool(self.session.run(self._agreed, {self._token: int(local)}))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._timer, name)


def _begin(self) -> None:
    _original["begin"](self)
    timer = self._timer
    if ConfigInitializer.is_initialized() and ConfigInitializer.get_instance().is_incremental_checkpoint:
        delta_schedule.attach(self)
    elif (ConfigInitializer.is_initialized() and ConfigInitializer.get_instance().rank_size > 1
            and getattr(timer, "_every_secs", None) is not None and not isinstance(timer, AgreedTimer)):
        # built in begin(): the graph is finalized before the first step
        token = tf.compat.v1.placeholder(tf.int32, [], name="mxrec_save_timer_token")
        self._timer = AgreedTimer(timer, token, collectives.allreduce(token, "max", name="mxrec_save_timer"))


def _after_run(self, run_context, run_values) -> None:
    timer = self._timer
    if isinstance(timer, (AgreedTimer, delta_schedule.IncrementalTimer)):
        timer.session = run_context.session
        try:
            _original["after_run"](self, run_context, run_values)
        finally:
            timer.session = None
        return
    _original["after_run"](self, run_context, run_values)


def install() -> None:
    """Patch ``CheckpointSaverHook`` (idempotent)."""
    delta_schedule.install()
    if _original:
        return
    for name, replacement in (("begin", _begin), ("after_run", _after_run)):
        _original[name] = getattr(_Hook, name)
        setattr(_Hook, name, replacement)


def uninstall() -> None:
    """Put ``CheckpointSaverHook`` back as TensorFlow defines it."""
    delta_schedule.uninstall()
    for name, original in _original.items():
        setattr(_Hook, name, original)
    _original.clear()
