"""What the model zoo's scripts share that is not SDK usage (each ``main_mxrec.py`` calls the SDK itself:
``init``, ``create_table``, ``sparse_lookup``, the hash optimizers, the loop, the Saver).

    config.py      the flags: training settings every model shares, and flags made from dataclasses
    switches.py    ``USE_DYNAMIC``, ``CACHE_MODE``, ``USE_FAAE``, ... from the environment
    data.py        reading the TFRecords (``mx_rec.data.records``) with ``tf.data``: per-rank shards,
                   padded evaluation batches
    table_sizes.py the keys a table must hold, its rows per ``CACHE_MODE``, the SSD folder
    layers.py      seeded dense layers and MLPs shared between the train and eval graphs
    training.py    the loss, the learning-rate schedule and the step log
    evaluation.py  AUC and log loss per task, over all ranks
    report.py      the job's header lines and its ``--metrics_file``

Scripts import it as ``models.common`` (``tools/bootstrap.sh`` puts the checkout on the
interpreter's path, as Rec SDK's examples import ``examples.model_common``).
"""
