"""Per-table counters (keys per tier, hit rates, swaps, SSD I/O, admission rejections, evictions):
read them from Python with :func:`telemetry`, or let :class:`TelemetryHook` log them and write
TensorBoard summaries every few steps."""
from typing import Dict, Optional

import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.system.log import logger


def telemetry() -> Dict[str, Dict[str, float]]:
    """table name -> that table's counters on this rank (see ``EmbeddingTable.telemetry``)."""
    return {name: table.telemetry() for name, table in sorted(ConfigInitializer.get_instance().tables.items())}


def summary(step: int, values: Dict[str, Dict[str, float]]) -> tf.compat.v1.Summary:
    """A Summary proto with one scalar per table and counter, tagged ``mx_rec/<table>/<counter>``."""
    return tf.compat.v1.Summary(value=[
        tf.compat.v1.Summary.Value(tag=f"mx_rec/{table}/{name}", simple_value=float(value))
        for table, counters in values.items() for name, value in counters.items()])


class TelemetryHook(tf.compat.v1.train.SessionRunHook):
    """Every ``every_n_steps`` runs: log each table's counters and, with ``output_dir``, write them as
    TensorBoard scalars (tags ``mx_rec/<table>/<counter>``) at the global step."""

    def __init__(self, every_n_steps: int = 100, output_dir: Optional[str] = None) -> None:
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"TelemetryHook: every_n_steps must be an int >= 1, got {every_n_steps!r}")
        self.every_n_steps = every_n_steps
        self.output_dir = output_dir
        self._writer = None
        self._runs = 0

    def begin(self) -> None:
        if self.output_dir:
            self._writer = tf.compat.v1.summary.FileWriterCache.get(self.output_dir)
        self._step = tf.compat.v1.train.get_global_step()

    def after_run(self, run_context, run_values) -> None:
        self._runs += 1
        if self._runs % self.every_n_steps:
            return
        step = run_context.session.run(self._step) if self._step is not None else self._runs
        values = telemetry()
        for table, counters in values.items():
            logger.info("telemetry %s step %d: %s", table, step,
                        ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in counters.items()))
        if self._writer is not None:
            self._writer.add_summary(summary(step, values), step)
            self._writer.flush()
