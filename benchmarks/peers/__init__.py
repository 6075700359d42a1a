"""Benchmarks against the peers a user would pick instead of mx_rec, in one invocation.

Systems (``systems.SYSTEMS``): mx_rec in HBM, DDR and SSD modes, TFRA 0.7.0 ``dynamic_embedding``,
and plain TF (one ``tf.Variable`` per table, ids hashed by ``key mod rows``). Workloads: a lookup +
update microbenchmark and end-to-end DLRM training, on the same generated Criteo-shaped batches.
Each system runs in its own worker process (TFRA patches TensorFlow on import); the parent
alternates timed rounds between the workers. Peak RSS per 10^6 keys is measured in separate
processes. Results: ``benchmarks/results/peers.json``, ``peers.png`` and a README table.

Modules: ``settings`` (presets, tier sizes), ``data`` (the batch pool), ``systems`` (graphs),
``worker`` (one system's process), ``memory`` (RSS probe), ``profiling`` (op and py-spy profiles),
``run`` (the entry point), ``report`` (chart and README table).

Usage::

    .venv/bin/python -m benchmarks.peers                  # full preset (~10-15 min on 2 cores)
    .venv/bin/python -m benchmarks.peers --preset small   # smoke test (about a minute)
"""
