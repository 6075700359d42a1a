"""Peak RSS probe: one process per system trains the micro workload on N distinct keys.

``python -m benchmarks.peers.memory --system S --keys N --settings JSON`` prints one JSON line:
``{"system", "keys", "keys_held", "rss_after_init_bytes", "maxrss_bytes", "rss_bytes"}`` (RSS after
the graph and session are built, peak RSS, RSS at the end; bytes). Every probe imports the same modules
(TensorFlow, mx_rec, TFRA), so ``--system baseline`` (a session that ran a trivial op) is subtracted
to leave what the table costs: its rows, its optimizer slots (lazy Adam: m and v, so the raw data
is 3 x dim x 4 bytes a key), its hash index and the step's transient buffers.

Keys: ranks 1..N scattered as in the pool, ``batch_size`` x ``fields`` distinct keys a step (every
key once). mx_rec HBM reserves its device rows up front (N + 10%, as in the speed runs); TFRA's
table grows as keys arrive; plain TF has N rows.
"""
import argparse
import dataclasses
import json
import os
import resource
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROBED = ("mx_rec_hbm", "tfra", "plain_tf")


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def probe(system: str, keys: int, settings) -> dict:
    """Train ``system``'s micro graph over ``keys`` distinct keys; returns the RSS figures."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_recommenders_addons  # noqa: F401 - same imports in every probe
    import mx_rec.core.embedding  # noqa: F401

    from benchmarks.lookup_update import _scatter_keys
    from benchmarks.peers import systems
    from benchmarks.peers.settings import tier_sizes

    tf.compat.v1.disable_eager_execution()
    settings = dataclasses.replace(settings, num_keys=keys)
    held, after_init = 0, None
    if system == "baseline":
        with tf.Graph().as_default(), tf.compat.v1.Session() as session:
            x = tf.compat.v1.placeholder(tf.int64, [None, settings.fields])
            session.run(tf.reduce_sum(x), feed_dict={x: np.ones((settings.batch_size, settings.fields), np.int64)})
    else:
        sizes = tier_sizes("hbm", keys, 0) if system == "mx_rec_hbm" else None
        built = systems.build(system, "micro", settings, sizes)
        after_init = _rss_bytes()
        all_keys = _scatter_keys(np.arange(1, keys + 1, dtype=np.int64))
        rows = -(-keys // settings.fields)
        padded = np.concatenate([all_keys, all_keys[: rows * settings.fields - keys]]).reshape(rows, settings.fields)
        for start in range(0, rows, settings.batch_size):
            built.session.run(built.train_op, feed_dict={built.feeds["ids"]: padded[start:start + settings.batch_size]})
        held = built.stats().get("keys_held", keys)
    return {"system": system, "keys": keys, "keys_held": held, "rss_after_init_bytes": after_init,
            "maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "rss_bytes": _rss_bytes()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--system", choices=("baseline",) + PROBED, required=True)
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--settings", required=True, help="Settings as JSON")
    args = parser.parse_args()
    from benchmarks.peers.settings import Settings

    result = probe(args.system, args.keys, Settings(**json.loads(args.settings)))
    sys.__stdout__.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
