"""The fault-injection suite's job: a small two-table model whose saves are killed, starved of disk, or checked.

    fault_job.py train DIR1 DIR2           train 6 steps, save DIR1/model-6 and DIR2/model; 1 or N ranks
    fault_job.py resave DIR STEP           restore DIR's latest, train 2 steps, save again, under the fault hook
    fault_job.py fill DIR OUT STEP FREE..  on a small filesystem: for each FREE (bytes left free) try a save,
                                           expect a DiskFullError, copy DIR to OUT/fill-<i>; then save for real
    fault_job.py verify CASES.json OUT.json  restore and export every case; report how each ended

The fault hook (``resave``) counts every file event of the save in this process: each open for
writing, each write call, rename, link, unlink, mkdir, rmtree, TF's own Python-level file calls
and its C++ save op. ``MXREC_FAULT_LOG`` gets one line per event; at event ``MXREC_FAULT_KILL_AT``
the process SIGKILLs itself (on rank ``MXREC_FAULT_RANK``, default 0; "all" logs every rank, each
to the log path with ``{rank}`` filled in), before doing it. With
``MXREC_FAULT_INSIDE_OP=1`` it is killed instead while TF's save op is writing its data file
(seen by a thread watching for TF's ``.tempstate`` file). Nothing sleeps: kills follow events.
"""
import builtins
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.client import session as tf_session  # noqa: E402
from tensorflow.python.lib.io import file_io  # noqa: E402

from mx_rec.config.initializer import ConfigInitializer  # noqa: E402
from mx_rec.core.embedding import create_table, sparse_lookup  # noqa: E402
from mx_rec.inference import load_inference_model, set_prediction  # noqa: E402
from mx_rec.optimizers import lazy_adam  # noqa: E402
from mx_rec.saver.table_state import collect  # noqa: E402
from mx_rec.util.initialize import init  # noqa: E402
from mx_rec.util.variable import get_dense_and_sparse_variable  # noqa: E402

B, F, D, POOL = 32, 3, 8, 300
tf.compat.v1.disable_eager_execution()


def rank_info():
    return int(os.environ.get("HOROVOD_RANK", "0")), int(os.environ.get("HOROVOD_SIZE", "1"))


def batch(step: int):
    rng = np.random.default_rng(500 + step)
    users = (np.minimum(rng.zipf(1.3, (B, F)), POOL) * 7919 - 3 * POOL).astype(np.int64)
    items = rng.integers(-40, 40, (B, 2)).astype(np.int64)
    return users, items, rng.random(B).astype(np.float32)


def build():
    init()
    init_fn = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=3)
    tables = [create_table(tf.int64, D, "users", init_fn, device_vocabulary_size=POOL + 10),
              create_table(tf.int64, D, "items", init_fn, device_vocabulary_size=100)]
    feeds = {"users": tf.compat.v1.placeholder(tf.int64, [B, F], name="users"),
             "items": tf.compat.v1.placeholder(tf.int64, [B, 2], name="items"),
             "label": tf.compat.v1.placeholder(tf.float32, [B], name="label")}
    w = tf.compat.v1.get_variable("w", [(F + 2) * D, 1], initializer=tf.constant_initializer(0.05))
    # not trained: makes TF's data file large enough that a kill can land while TF writes it
    tf.compat.v1.get_variable("big", [256, 1024], initializer=tf.compat.v1.random_uniform_initializer(seed=4))

    def logits(is_train):
        u = sparse_lookup(tables[0], feeds["users"], is_train=is_train, name=f"u_{is_train}",
                          **({"access_and_evict_config": {"access_threshold": 2}} if is_train else {}))
        i = sparse_lookup(tables[1], feeds["items"], is_train=is_train, name=f"i_{is_train}")
        x = tf.concat([tf.reshape(u, [B, F * D]), tf.reshape(i, [B, 2 * D])], axis=1)
        return tf.squeeze(tf.matmul(x, w), 1)

    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=feeds["label"], logits=logits(True)))
    step = tf.compat.v1.train.get_or_create_global_step()
    dense, sparse = get_dense_and_sparse_variable()
    dense = [v for v in dense if not v.name.startswith("big")]
    train = tf.group(tf.compat.v1.train.AdamOptimizer(0.01).minimize(loss, var_list=dense, global_step=step),
                     lazy_adam.create_hash_optimizer(0.01).minimize(loss, var_list=sparse))
    set_prediction(tf.sigmoid(logits(False)), {"users": feeds["users"], "items": feeds["items"]})
    return tables, feeds, train


def run(sess, feeds, train, steps):
    for s in steps:
        users, items, labels = batch(s)
        sess.run(train, {feeds["users"]: users, feeds["items"]: items, feeds["label"]: labels})


def state(sess, tables):
    """Every dense variable and every table's keys, rows, slots and admission counts, sorted by key."""
    excluded = {id(v) for v in ConfigInitializer.get_instance().sparse_variables()}
    out = {f"dense/{v.op.name}": sess.run(v) for v in tf.compat.v1.global_variables() if id(v) not in excluded}
    for table in tables:
        st = collect(table, sess)
        order = np.argsort(st.keys, kind="stable")
        out[f"{table.table_name}/keys"] = st.keys[order]
        out[f"{table.table_name}/embeddings"] = st.embeddings[order]
        for name, value in st.slots.items():
            out[f"{table.table_name}/slot/{name}"] = value[order]
        stat_order = np.argsort(st.stat_keys, kind="stable")
        for name in ("stat_keys", "counts", "last_seen"):
            out[f"{table.table_name}/{name}"] = getattr(st, name)[stat_order]
    return out


def save_path(directory, with_step):
    return os.path.join(directory, "model"), (tf.compat.v1.train.get_global_step() if with_step else None)


class FaultHook:
    """Counts this process's file events during a save; SIGKILLs the process at event ``kill_at``."""

    def __init__(self, root: str, kill_at: int, log: str, inside_op: bool):
        self.root, self.kill_at, self.inside_op, self.n = os.path.abspath(root), kill_at, inside_op, 0
        self.log = open(log, "w", encoding="utf-8")  # noqa: SIM115 - written until the process dies
        self.active = False

    def event(self, what: str) -> None:
        if not self.active:
            return
        self.n += 1
        self.log.write(f"{self.n}\t{what}\n")
        self.log.flush()
        if self.n == self.kill_at and not self.inside_op:
            os.kill(os.getpid(), signal.SIGKILL)

    def ours(self, path) -> bool:
        try:
            return os.path.abspath(os.fspath(path)).startswith(self.root)
        except TypeError:
            return False

    def rel(self, path) -> str:
        return os.path.relpath(os.path.abspath(os.fspath(path)), self.root)

    def install(self, saver) -> None:
        hook = self
        real_open = builtins.open

        class Counted:
            def __init__(self, f, name):
                self._f, self._name, self._writes = f, name, 0

            def write(self, data):
                self._writes += 1
                hook.event(f"write {self._name} #{self._writes}")
                return self._f.write(data)

            def __getattr__(self, item):
                return getattr(self._f, item)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return self._f.__exit__(*exc)

            def __iter__(self):
                return iter(self._f)

        def counted_open(file, mode="r", *args, **kwargs):
            writing = any(c in mode for c in "wax+")
            if writing and hook.ours(file):
                hook.event(f"open {hook.rel(file)}")
                return Counted(real_open(file, mode, *args, **kwargs), hook.rel(file))
            return real_open(file, mode, *args, **kwargs)

        builtins.open = counted_open
        for module, name in ((os, "rename"), (os, "replace"), (os, "link"), (os, "remove"), (os, "unlink"),
                             (os, "makedirs"), (os, "mkdir"), (shutil, "rmtree")):
            self._wrap(module, name, lambda a: a[0])
        for name in ("rename", "rename_v2", "write_string_to_file", "delete_file", "delete_file_v2",
                     "delete_recursively", "delete_recursively_v2"):
            if hasattr(file_io, name):
                self._wrap(file_io, name, lambda a: a[0], prefix="tf ")
        real_run = tf_session.BaseSession.run
        save_tensor = saver.saver_def.save_tensor_name

        def run(session, fetches, *args, **kwargs):
            if fetches != save_tensor:
                return real_run(session, fetches, *args, **kwargs)
            hook.event("tf save op starts")
            watcher = None
            if hook.inside_op and hook.n >= hook.kill_at:
                watcher = threading.Thread(target=hook._kill_on_tempstate, daemon=True)
                watcher.start()
            result = real_run(session, fetches, *args, **kwargs)
            if watcher is not None:
                hook.log.write("missed\tthe save op ended before its .tempstate file was seen\n")
                hook.log.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            hook.event("tf save op ended")
            return result

        tf_session.BaseSession.run = run

    def _kill_on_tempstate(self) -> None:
        while True:
            if any(".tempstate" in name for name in os.listdir(self.root)):
                self.log.write(f"{self.n}\tinside tf save op: .tempstate seen\n")
                self.log.flush()
                os.kill(os.getpid(), signal.SIGKILL)

    def _wrap(self, module, name, path_of, prefix=""):
        real = getattr(module, name)
        hook = self

        def wrapped(*args, **kwargs):
            if args and hook.ours(path_of(args)):
                hook.event(f"{prefix}{name} {hook.rel(path_of(args))}")
            return real(*args, **kwargs)

        setattr(module, name, wrapped)


def train_mode(step_dir, nostep_dir):
    """One training, saved twice: with global_step into ``step_dir``, without into ``nostep_dir``."""
    tables, feeds, train = build()
    saver = tf.compat.v1.train.Saver(max_to_keep=3)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        run(sess, feeds, train, range(6))
        saver.save(sess, *save_path(step_dir, True))
        saver.save(sess, *save_path(nostep_dir, False))


def resave_mode(directory, with_step):
    tables, feeds, train = build()
    saver = tf.compat.v1.train.Saver(max_to_keep=3)
    rank, _ = rank_info()
    hook = None
    if os.environ.get("MXREC_FAULT_RANK", "0") in ("all", str(rank)) and os.environ.get("MXREC_FAULT_LOG"):
        hook = FaultHook(directory, int(os.environ.get("MXREC_FAULT_KILL_AT", "0")),
                         os.environ["MXREC_FAULT_LOG"].format(rank=rank),
                         os.environ.get("MXREC_FAULT_INSIDE_OP") == "1")
        hook.install(saver)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        saver.restore(sess, latest(directory))
        run(sess, feeds, train, range(6, 8))
        if hook:
            hook.active = True
        saver.save(sess, *save_path(directory, with_step))
        if hook:
            hook.event("save returned")
            hook.active = False


def _fill_to(filler, free_target):
    st = os.statvfs(os.path.dirname(filler))
    free = st.f_bavail * st.f_frsize
    with open(filler, "ab") as f:
        f.write(b"\0" * max(0, free - free_target))


_patched = []


def _fill_before(write, filler):
    from mx_rec.saver import layout
    from tensorflow.python.checkpoint import checkpoint_management
    module, name = (layout, "write_manifest") if write == "manifest" else (
        checkpoint_management, "update_checkpoint_state_internal")
    real = getattr(module, name)

    def filled_first(*args, **kwargs):
        _fill_to(filler, 0)
        return real(*args, **kwargs)

    setattr(module, name, filled_first)
    _patched.append((module, name, real))


def _unpatch():
    while _patched:
        module, name, real = _patched.pop()
        setattr(module, name, real)


def fill_mode(directory, out, with_step, targets):
    from mx_rec.saver.unit import DiskFullError
    tables, feeds, train = build()
    saver = tf.compat.v1.train.Saver(max_to_keep=3)
    filler = os.path.join(os.path.dirname(os.path.abspath(directory)), "filler")
    report = []
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        saver.restore(sess, latest(directory))
        run(sess, feeds, train, range(6, 8))
        for i, target in enumerate(targets + ["manifest", "tf-state"]):
            if isinstance(target, int):
                _fill_to(filler, target)
            else:  # the disk fills up just before the save writes its manifest, or TF's 'checkpoint' file
                _fill_before(target, filler)
            try:
                saver.save(sess, *save_path(directory, with_step))
                report.append({"free": target, "ended": "saved"})
            except DiskFullError as err:
                report.append({"free": target, "ended": "DiskFullError", "message": str(err)})
            except Exception as err:  # reported, and the test fails on it
                report.append({"free": target, "ended": type(err).__name__, "message": str(err)})
            _unpatch()
            os.remove(filler)
            subprocess.run(["cp", "-a", directory, os.path.join(out, f"fill-{i}")], check=True)
        saver.save(sess, *save_path(directory, with_step))
        report.append({"final": sorted(os.listdir(directory))})
        subprocess.run(["cp", "-a", directory, os.path.join(out, "fill-final")], check=True)
    with open(os.path.join(out, "fill.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)


def _export(case_dir, out_dir):
    """tools/export_local.py's main in this process: (exit code, stderr text)."""
    import contextlib
    import io
    from tools import export_local  # the tool itself
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = export_local.main(["--checkpoint", case_dir, "--output", out_dir])
    return rc, err.getvalue()


def _same(a, b):
    return sorted(a) == sorted(b) and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def _exported(out_dir):
    arrays = {}
    for table in sorted(os.listdir(os.path.join(out_dir, "tables"))):
        for name in ("keys", "rows"):
            arrays[f"{table}/{name}"] = np.load(os.path.join(out_dir, "tables", table, f"{name}.npy"))
    with open(os.path.join(out_dir, "model.pb"), "rb") as f:
        arrays["model.pb"] = np.frombuffer(f.read(), np.uint8)
    return arrays


def latest(directory):
    """The latest checkpoint of ``directory`` as a prefix inside it (the 'checkpoint' file of a copied
    folder names the folder it was written in)."""
    state = tf.train.get_checkpoint_state(directory)
    return os.path.join(directory, os.path.basename(state.model_checkpoint_path))


def verify_mode(cases_path, out_path):
    """For every case {"dir", "references": [names], "must_name": [paths] or None}: restore the latest
    checkpoint of "dir" and export it; each must equal an allowed reference bit for bit, or refuse with
    a message naming one of "must_name" (any file of "dir" when None)."""
    with open(cases_path, encoding="utf-8") as f:
        spec = json.load(f)
    tables, feeds, train = build()
    saver = tf.compat.v1.train.Saver(max_to_keep=3)
    refs, results = {}, []
    with tf.compat.v1.Session() as sess:
        def attempt(case_dir, out_dir):
            sess.run(tf.compat.v1.global_variables_initializer())
            try:
                saver.restore(sess, latest(case_dir))
                restored = ("ok", state(sess, tables))
            except Exception as err:  # judged below: must be a refusal naming the file
                restored = ("refused", f"{type(err).__name__}: {err}")
            shutil.rmtree(out_dir, ignore_errors=True)
            try:
                rc, text = _export(case_dir, out_dir)
                if rc == 0:
                    load_inference_model(out_dir).close()
                exported = ("ok", _exported(out_dir)) if rc == 0 else ("refused", text)
            except Exception as err:  # judged below
                exported = ("refused", f"{type(err).__name__}: {err}\n{traceback.format_exc()}")
            return restored, exported

        for name, ref_dir in spec["references"].items():
            (r_kind, r_val), (e_kind, e_val) = attempt(ref_dir, os.path.join(spec["scratch"], f"ref-{name}"))
            assert r_kind == "ok" and e_kind == "ok", f"reference {name} does not restore/export: {r_val} {e_val}"
            refs[name] = (r_val, e_val)
        for case in spec["cases"]:
            (r_kind, r_val), (e_kind, e_val) = attempt(case["dir"], os.path.join(spec["scratch"], "export"))
            names = case.get("must_name") or []
            allowed = case["allowed"]

            def judge(kind, value, which):
                if kind == "ok":
                    match = [n for n in allowed if _same(value, refs[n][which])]
                    return f"restored {match[0]}" if match else "WRONG: restored something else"
                named = [n for n in names if n in value] if names else case["dir"].rstrip("/") + "/" in value
                return "refused naming the file" if named else f"WRONG: refused without naming the file: {value}"

            result = {"case": case["name"], "kind": case["kind"], "restore": judge(r_kind, r_val, 0),
                      "export": judge(e_kind, e_val, 1), "restore_message": r_val if r_kind != "ok" else "",
                      "export_message": e_val if e_kind != "ok" else ""}
            if case.get("save_after") is not None and r_kind == "ok":  # the next save removes what the kill left
                saver.save(sess, *save_path(case["dir"], case["save_after"]))
                result["leftovers_after_next_save"] = _leftovers(case["dir"])
            results.append(result)
        model = os.path.join(spec["scratch"], f"ref-{spec['model_damage']}")
        for relative in ("model.json", "model.pb", "tables/users/keys.npy", "tables/users/rows.npy"):
            for offset in (0.5, 1.0):  # an exported model damaged: load_inference_model refuses, naming the file
                broken = os.path.join(spec["scratch"], "model-broken")
                shutil.rmtree(broken, ignore_errors=True)
                shutil.copytree(model, broken)
                damaged = damage(os.path.join(broken, relative), offset)
                try:
                    load_inference_model(broken).close()
                    outcome = "WRONG: loaded"
                except Exception as err:  # judged by the message
                    outcome = "refused naming the file" if damaged in str(err) else f"WRONG: {err}"
                results.append({"case": f"model {relative} byte {offset}", "kind": "damage-exported-model",
                                "load": outcome})
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)


def damage(path, fraction):
    """Flip every bit of one byte of ``path`` at ``fraction`` of its length (1.0: the last byte); returns path."""
    size = os.path.getsize(path)
    offset = min(size - 1, int(size * fraction))
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    return path


def _leftovers(directory):
    """Names in ``directory`` that only an unfinished save leaves (ours and TF's temporaries)."""
    marks = (".tmp-", ".old-", ".tempstate", "_temp")
    return sorted(n for n in os.listdir(directory) if any(m in n for m in marks) or ".tmp" in n.split(".")[-1])


def main(argv):
    mode = argv[0]
    if mode == "train":
        train_mode(argv[1], argv[2])
    elif mode == "resave":
        resave_mode(argv[1], argv[2] == "step")
    elif mode == "fill":
        fill_mode(argv[1], argv[2], argv[3] == "step", [int(x) for x in argv[4:]])
    elif mode == "verify":
        verify_mode(argv[1], argv[2])
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1:])
