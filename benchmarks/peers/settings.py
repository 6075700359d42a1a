"""What one peer-benchmark invocation measures: presets and the mx_rec tier sizes."""
import dataclasses
from typing import Dict


@dataclasses.dataclass(frozen=True)
class Settings:
    """One invocation's sizes and step counts.

    Attributes:
        preset: preset name. batch_size / fields: sparse ids per batch are int64 [batch_size, fields].
        dense: dense features per sample (float32 [batch_size, dense]). dim: embedding width.
        num_keys: distinct keys the Zipf ranks are drawn over. zipf_a: Zipf exponent.
        pool_batches: batches generated once and cycled through by every system.
        rounds: timed rounds per system and workload (the figures are their medians).
        micro_steps / dlrm_steps: timed steps per round of each workload.
        warmup_steps: untimed steps per workload after the first pass over the pool.
        memory_keys: distinct keys inserted by the memory probe (RSS is reported per 10^6 keys).
        memory_repeats: probes per system (and baseline), alternating; the medians are reported.
        profile_seconds: about how long py-spy samples each workload of mx_rec HBM.
        learning_rate: Adam's rate, dense and sparse. seed: numpy seed of keys, dense features, labels.
    """

    preset: str
    batch_size: int
    fields: int
    dense: int
    dim: int
    num_keys: int
    zipf_a: float
    pool_batches: int
    rounds: int
    micro_steps: int
    dlrm_steps: int
    warmup_steps: int
    memory_keys: int
    memory_repeats: int
    profile_seconds: float
    learning_rate: float = 0.001
    seed: int = 20240601

    @property
    def ids_per_step(self) -> int:
        return self.batch_size * self.fields


PRESETS: Dict[str, Settings] = {
    "full": Settings(preset="full", batch_size=8192, fields=26, dense=13, dim=16, num_keys=1_000_000, zipf_a=1.1,
                     pool_batches=16, rounds=9, micro_steps=24, dlrm_steps=10, warmup_steps=4,
                     memory_keys=1_000_000, memory_repeats=3, profile_seconds=8.0),
    "small": Settings(preset="small", batch_size=512, fields=26, dense=13, dim=16, num_keys=20_000, zipf_a=1.1,
                      pool_batches=4, rounds=5, micro_steps=2, dlrm_steps=2, warmup_steps=1, memory_keys=50_000,
                      memory_repeats=1, profile_seconds=1.0),
}

# Fractions of the distinct keys held by each tier (as benchmarks/tiers.py has them).
TIER_FRACTIONS = {
    "hbm": {"device": 1.1},
    "ddr": {"device": 0.10, "host": 1.0},
    "ssd": {"device": 0.02, "host": 0.10, "ssd": 1.0},
}


def tier_sizes(mode: str, num_keys: int, distinct_per_batch: int) -> Dict[str, int]:
    """``create_table`` vocabulary sizes of an mx_rec mode.

    The fractions of ``TIER_FRACTIONS``, except that a device cache (DDR, SSD) and the SSD mode's
    host tier never get fewer rows than two batches of distinct keys (``distinct_per_batch``, the
    largest of the pool): the SDK needs a batch's rows on the device beside the previous batch's.
    At batch 8192 that floor (~90k) is above the SSD mode's 2% (20k); the JSON records the sizes used.
    """
    fractions = TIER_FRACTIONS[mode]
    floor = 2 * distinct_per_batch
    sizes = {"device_vocabulary_size": int(fractions["device"] * num_keys)}
    if mode != "hbm":
        sizes["device_vocabulary_size"] = max(sizes["device_vocabulary_size"], floor)
        sizes["host_vocabulary_size"] = max(int(fractions["host"] * num_keys), floor)
    if mode == "ssd":
        sizes["ssd_vocabulary_size"] = int(fractions["ssd"] * num_keys)
    return sizes
