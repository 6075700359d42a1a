"""The model zoo's dataset format and what its converters share (imports only ``mx_rec.system``).

    records.py        the TFRecord format: fields (``label`` / ``sparse_feature`` / ``dense_feature``),
                      the schemas (Criteo, census), the part-file writer and ``meta.json``
    text_input.py     raw text input of a converter: gzip or plain, line numbers, malformed lines
    output_folder.py  a converter's output folder, replaced whole at the end or left as it was
    zipf.py           Zipf popularity for synthetic data

Converters (``tools/criteo``, ``models/mmoe/census.py``) write with it, the zoo's readers
(``models/common/data.py``) and ``tools/predict_local.py`` read with it.
"""
