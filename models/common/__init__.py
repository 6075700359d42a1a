"""Code the model zoo shares: the TFRecord format, the feature switches, tables and lookups,
and the train / evaluate loop.

    records.py    the on-disk format (``label`` / ``sparse_feature`` / ``dense_feature``, packed
                  ``line_per_sample`` per record) and its writer, plus ``meta.json``
    data.py       reading it back with ``tf.data``: per-rank shards, padded evaluation batches
    switches.py   ``USE_DYNAMIC``, ``CACHE_MODE``, ``USE_FAAE``, ... from the environment
    config.py     the training settings every model shares, and flags made from dataclasses
    embedding.py  ``create_table`` / ``sparse_lookup`` as the switches ask
    training.py   the train op (dense all-reduce, hash optimizers, by-address flow) and loop
    evaluation.py AUC and log loss per task, over all ranks
    job.py        one function that runs a model from its config
    layers.py     seeded dense layers and MLPs shared between the train and eval graphs
    text_input.py raw text for the converters: gzip or plain, progress bar, malformed lines
    output_folder.py  a converter's output folder, replaced whole at the end or left as it was

A model folder puts ``models/`` on ``sys.path`` and imports ``common.<module>``.
"""
