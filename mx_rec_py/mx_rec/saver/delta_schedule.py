"""When to save a base and when a delta: ``CheckpointSaverHook`` with incremental checkpoints on.

With ``init(is_incremental_checkpoint=True, save_checkpoint_due_time=B, save_delta_checkpoints_secs=D)``
every ``CheckpointSaverHook`` (the one ``MonitoredTrainingSession(save_checkpoint_secs=...)`` and
``tf.estimator.Estimator`` make, or :class:`IncrementalSaverHook`) saves, as Rec SDK's does, a full
(base) checkpoint every B seconds and a delta every D seconds in between; the first save (when
the session is created) and the last (at the end) are bases. :class:`IncrementalSaverHook` can
also count steps (``base_steps``, ``delta_steps``). On several ranks every step they agree (an
all-reduce ``max`` of 0 = nothing, 1 = delta, 2 = base), so all ranks save the same kind at the
same step.

Example:
    >>> hook = IncrementalSaverHook("ckpt", base_secs=3600, delta_steps=500)        # doctest: +SKIP
    >>> with tf.compat.v1.train.MonitoredTrainingSession(hooks=[hook]) as sess: ...  # doctest: +SKIP
"""
import time
from typing import Any, Callable, Dict, Optional

import tensorflow as tf
from tensorflow.python.training import basic_session_run_hooks

from mx_rec.communication import collectives
from mx_rec.config.initializer import ConfigInitializer

NOTHING, DELTA, BASE = 0, 1, 2
_Hook = basic_session_run_hooks.CheckpointSaverHook
_original: Dict[str, Any] = {}
_pending: Optional[tuple] = None  # (is_incremental_checkpoint, save_delta) of the hook's save in progress


class Schedule:
    """Seconds and/or steps between bases and between deltas (None: not by that measure)."""

    def __init__(self, base_secs: Optional[float] = None, delta_secs: Optional[float] = None,
                 base_steps: Optional[int] = None, delta_steps: Optional[int] = None,
                 clock: Callable[[], float] = time.time) -> None:
        for name, value in (("base_secs", base_secs), ("delta_secs", delta_secs), ("base_steps", base_steps),
                            ("delta_steps", delta_steps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"IncrementalSaverHook: {name} must be > 0, got {value!r}")
        if base_secs is None and base_steps is None and delta_secs is None and delta_steps is None:
            raise ValueError("IncrementalSaverHook: give base_secs/base_steps and/or delta_secs/delta_steps")
        self.base_secs, self.delta_secs, self.base_steps, self.delta_steps = base_secs, delta_secs, base_steps, \
            delta_steps
        self.clock = clock
        self.base_at = self.delta_at = None  # (time, step) of the last base / of the last save

    def due(self, step: int) -> int:
        """What is due at ``step`` on this process's clock: BASE, DELTA or NOTHING."""
        if self.base_at is None:
            return BASE
        now = self.clock()
        if (self.base_secs is not None and now >= self.base_at[0] + self.base_secs) or \
                (self.base_steps is not None and step >= self.base_at[1] + self.base_steps):
            return BASE
        if (self.delta_secs is not None and now >= self.delta_at[0] + self.delta_secs) or \
                (self.delta_steps is not None and step >= self.delta_at[1] + self.delta_steps):
            return DELTA
        return NOTHING

    def mark(self, step: int, kind: int) -> None:
        now = (self.clock(), step)
        if kind == BASE or self.base_at is None:
            self.base_at = now
        self.delta_at = now


class IncrementalTimer:
    """Stands in for a ``CheckpointSaverHook``'s timer: triggers when a base or a delta is due on any rank."""

    def __init__(self, timer, schedule: Schedule) -> None:
        self._timer = timer
        self.schedule = schedule
        self.kind = BASE  # of the save being triggered (the hook's first and last saves are bases)
        self.session = None  # set around the hook's after_run
        self._agree = None
        if ConfigInitializer.get_instance().rank_size > 1:  # built in begin(), before the graph is final
            token = tf.compat.v1.placeholder(tf.int32, [], name="mxrec_delta_timer_token")
            self._agree = (token, collectives.allreduce(token, "max", name="mxrec_delta_timer"))

    def should_trigger_for_step(self, step: int) -> bool:
        if self._timer.last_triggered_step() == step:
            return False
        kind = self.schedule.due(step)
        if self._agree is not None and self.session is not None:
            kind = int(self.session.run(self._agree[1], {self._agree[0]: kind}))
        self.kind = kind
        return kind != NOTHING

    def update_last_triggered_step(self, step: int):
        self.schedule.mark(step, self.kind)
        return self._timer.update_last_triggered_step(step)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._timer, name)


class IncrementalSaverHook(_Hook):
    """A ``CheckpointSaverHook`` that saves bases and deltas by seconds and/or steps (needs
    ``init(is_incremental_checkpoint=True, ...)``). Defaults: init's ``save_checkpoint_due_time`` and
    ``save_delta_checkpoints_secs``. Other arguments as ``tf.compat.v1.train.CheckpointSaverHook``'s."""

    def __init__(self, checkpoint_dir: str, base_secs: Optional[float] = None, delta_secs: Optional[float] = None,
                 base_steps: Optional[int] = None, delta_steps: Optional[int] = None, saver=None,
                 checkpoint_basename: str = "model.ckpt", scaffold=None, listeners=None) -> None:
        config = ConfigInitializer.get_instance()
        if not config.is_incremental_checkpoint:
            raise ValueError("IncrementalSaverHook needs init(is_incremental_checkpoint=True, ...)")
        if base_secs is None and base_steps is None:
            base_secs = config.save_checkpoint_due_time
        if delta_secs is None and delta_steps is None:
            delta_secs = config.save_delta_checkpoints_secs
        self.schedule = Schedule(base_secs, delta_secs, base_steps, delta_steps)
        super().__init__(checkpoint_dir, save_steps=1, saver=saver, checkpoint_basename=checkpoint_basename,
                         scaffold=scaffold, listeners=listeners)


def attach(hook) -> None:
    """In ``CheckpointSaverHook.begin`` with incremental checkpoints on: its timer becomes an IncrementalTimer."""
    if isinstance(hook._timer, IncrementalTimer):
        return
    schedule = getattr(hook, "schedule", None)
    if schedule is None:
        config = ConfigInitializer.get_instance()
        schedule = Schedule(config.save_checkpoint_due_time, config.save_delta_checkpoints_secs)
    hook._timer = IncrementalTimer(hook._timer, schedule)


def _save(self, session, step):
    global _pending
    timer = self._timer
    if not isinstance(timer, IncrementalTimer):
        return _original["_save"](self, session, step)
    _pending = (True, timer.kind == DELTA)
    try:
        return _original["_save"](self, session, step)
    finally:
        _pending = None
        timer.kind = BASE


def pending_kind(is_incremental_checkpoint: bool, save_delta: bool) -> tuple:
    """The kind a ``Saver.save`` call writes: its own arguments, or those of the hook's save in progress."""
    if _pending is not None and not (is_incremental_checkpoint or save_delta):
        return _pending
    return is_incremental_checkpoint, save_delta


def install() -> None:
    if not _original:
        _original["_save"] = _Hook._save
        _Hook._save = _save


def uninstall() -> None:
    if _original:
        _Hook._save = _original.pop("_save")
