"""``tools/inspect_checkpoint.py``: every unit of a real checkpoint folder, verified; a damaged file named."""
import json
import subprocess

import tensorflow as tf

from mx_rec.saver.inventory import format_inventory, inspect_checkpoint
from tests.paths import PYTHON, REPO, launch_env
from tests.helpers.checkpoint_model import small_model as _model

TOOL = REPO / "tools" / "inspect_checkpoint.py"


def _two_saves(path):
    tables, ids, train = _model(names=("t", "u"))
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train, {ids: [1, 2, 3]})
        saver.save(sess, str(path / "model"), global_step=1)
        sess.run(train, {ids: [4, 5]})
        return saver.save(sess, str(path / "model"), global_step=2)


def test_tool_lists_units_steps_sizes_and_keys(graph, tmp_path):
    latest = _two_saves(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model-3-mxrec-sparse.tmp-999999-dead").mkdir()  # a save that did not finish
    proc = subprocess.run([PYTHON, str(TOOL), str(tmp_path / "ckpt"), "--json"], cwd=tmp_path,
                          env=launch_env({"PYTHONPATH": ""}), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout)
    assert found["latest"] == latest
    assert [(u["kind"], u["step"], u["rank_size"], u["problem"]) for u in found["units"]] == [
        ("full", 1, 1, None), ("full", 2, 1, None)]
    second = found["units"][1]
    assert {t["name"]: (t["dim"], t["keys"], t["keys_per_rank"]) for t in second["tables"]} == {
        "t": (4, 5, [5]), "u": (4, 5, [5])}
    shard = tmp_path / "ckpt" / "model-2-mxrec-sparse" / "t" / "shard-00000-of-00001.npz"
    assert second["tables"][1 if second["tables"][0]["name"] == "u" else 0]["bytes"] == shard.stat().st_size
    assert second["bytes"] > second["dense_bytes"] > 0
    assert found["leftovers"] == [str(tmp_path / "ckpt" / "model-3-mxrec-sparse.tmp-999999-dead")]


def test_damaged_file_is_named(graph, tmp_path):
    _two_saves(tmp_path / "ckpt")
    shard = tmp_path / "ckpt" / "model-1-mxrec-sparse" / "u" / "shard-00000-of-00001.npz"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    (tmp_path / "ckpt" / "model-2-mxrec-sparse" / "manifest.json").write_text("{not json")
    inventory = inspect_checkpoint(str(tmp_path / "ckpt"))
    first, second = sorted(inventory.units, key=lambda u: u.prefix)
    assert f"{shard} is damaged" in first.problem and first.step == 1 and first.tables[1].keys == 3
    assert "model-2-mxrec-sparse/manifest.json is unreadable" in second.problem
    text = format_inventory(inventory)
    assert "DAMAGED" in text and str(shard) in text
    from tools.inspect_checkpoint import main
    assert main([str(tmp_path / "ckpt")]) == 1
    assert main([str(tmp_path / "nothing")]) == 2
