"""What a zoo job prints about itself and the figures rank 0 writes to ``--metrics_file``."""
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Dict, Mapping

from models.common.config import TrainConfig
from models.common.data import DataInfo
from models.common.evaluation import TaskMetrics
from models.common.switches import JobSwitches
from models.common.training import TrainStats


def announce(model: str, rank: int, ranks: int, cfg: TrainConfig, switches: JobSwitches, info: DataInfo, steps: int,
             n_eval: int, dims: Mapping[str, int], keys: int, note: str = "") -> None:
    """Print the job's two header lines: rank, steps, switches; data, tables and their key count.

    Args:
        dims: table name -> embedding width. keys: the distinct keys the tables are sized for.
        note: appended to the second line when not empty.
    """
    print(f"{model}: rank {rank} of {ranks}; {steps} steps of {cfg.batch_size} samples per rank, "
          f"{n_eval} eval batches of {cfg.eval_batch_size}; {switches.describe()}", flush=True)
    print(f"data {info.root}: {info.train.samples} train / {info.test.samples} test samples; tables "
          f"{', '.join(f'{name}(dim {dim})' for name, dim in dims.items())} sized for {keys} keys"
          + (f"; {note}" if note else ""), flush=True)


def finish(model: str, rank: int, ranks: int, cfg: TrainConfig, switches: JobSwitches, stats: TrainStats,
           results: Dict[str, TaskMetrics], eval_rate: float, wall: float, info: DataInfo) -> None:
    """Print the ``done in ...`` line; rank 0 writes ``cfg.metrics_file`` (when set) as JSON."""
    print(f"done in {wall:.1f} s (train {stats.seconds:.1f} s, {stats.samples_per_sec * ranks:.1f} samples/s "
          f"over {ranks} rank(s))", flush=True)
    if rank == 0 and cfg.metrics_file:
        write_metrics(Path(cfg.metrics_file), model, cfg, switches.describe(), ranks, stats, results, eval_rate,
                      wall, info)


def write_metrics(path: Path, model: str, cfg: TrainConfig, switches: str, ranks: int, stats: TrainStats,
                  results: Dict[str, TaskMetrics], eval_rate: float, wall: float, info: DataInfo) -> None:
    """The run's figures as JSON at ``path`` (written beside it, then moved into place)."""
    report = {
        "model": model, "switches": switches, "ranks": ranks, "config": asdict(cfg),
        "data": {"path": str(info.root), "train_samples": info.train.samples, "test_samples": info.test.samples},
        "train": {"steps": stats.steps, "final_loss": stats.final_loss, "seconds": stats.seconds,
                  "samples_per_sec_per_rank": stats.samples_per_sec,
                  "samples_per_sec": stats.samples_per_sec * ranks},
        "eval": {task: asdict(m) for task, m in results.items()},
        "eval_samples_per_sec_per_rank": eval_rate,
        "wall_seconds": wall,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    tmp.replace(path)
