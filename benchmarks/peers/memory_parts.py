"""Who owns the bytes of a memory probe: each part of a table's state, exactly, and what is left.

A probe (``benchmarks.peers.memory``) calls :func:`process_memory` in every process (the baseline
too) and :func:`table_parts` once its system has trained; :func:`breakdown` then turns a probe and
the baseline probe into rows that add up to the probe's peak RSS over the baseline's:

- the table's parts, from exact sizes: ``rows`` and ``optimizer slots`` (the TF variables' shapes x
  dtype size), ``key index`` (the hash index's slot arrays and free list, numpy ``nbytes``),
  ``admission counters`` (counts and last-seen times with their index), ``pending flags`` (rows whose
  initial value is not yet written), ``change log`` (delta checkpoints; empty unless enabled) and
  ``host structures`` (any other numpy array of the storage: DDR/SSD tiers);
- ``TF and allocator``, the remainder, split with ``/proc/self/status`` and glibc's ``mallinfo2``
  taken at the end of the probe (each over the baseline's):
  ``peak temporaries`` (peak RSS minus RSS at the end: the step's tensors and host arrays, freed
  since), ``code and files mapped in`` (``RssFile``: shared libraries' pages the run touched, LLVM's
  for numba, TF's kernels), ``freed memory malloc keeps`` (``fordblks``) and ``other anonymous
  memory`` (the rest at the end: TF's oneDNN allocator pool, graph, sessions, Python objects).

TFRA keeps its rows in C++ hash tables whose buckets are not visible; its parts count what any
layout needs (keys x (8-byte key + dim floats) for the rows and for each of Adam's two slot tables)
and the buckets' overhead falls into the remainder. All figures are bytes.
"""
import ctypes
import ctypes.util
from typing import Dict, List, Optional

import numpy as np

PART_NAMES = ("rows", "optimizer slots", "key index", "admission counters", "pending flags", "change log",
              "host structures")
REMAINDER_NAMES = ("peak temporaries", "code and files mapped in", "freed memory malloc keeps",
                   "other anonymous memory")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def mallinfo() -> Optional[Dict[str, int]]:
    """glibc's heap: ``in_use`` (allocated from arenas), ``free_held`` (freed, kept by malloc),
    ``mmapped`` (chunks malloc mapped for large allocations), ``arena`` (arena bytes from the system);
    None without glibc 2.33+."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _Mallinfo2
    info = fn()
    return {"in_use": info.uordblks, "free_held": info.fordblks, "mmapped": info.hblkhd, "arena": info.arena}


def _status() -> Dict[str, int]:
    out = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[name] = int(value.split()[0]) * 1024
    return out


def tf_cpu_allocator() -> Optional[Dict[str, int]]:
    """TF's CPU allocator (oneDNN's, a BFC pool for tensors over 256 KiB): bytes in use and at the
    peak, in whole pool chunks (pages never touched count too); None where TF does not tell."""
    try:
        import tensorflow as tf
        from tensorflow.python.eager import context

        context.context().ensure_initialized()
        info = tf.config.experimental.get_memory_info("CPU:0")
    except Exception:  # noqa: BLE001 - an allocator without statistics
        return None
    return {"in_use": int(info["current"]), "peak": int(info["peak"])}


def process_memory() -> dict:
    """This process now: RSS and its peak (VmRSS, VmHWM), anonymous and file-backed RSS, mallinfo2,
    TF's CPU allocator; bytes."""
    status = _status()
    return {"rss": status.get("VmRSS"), "peak_rss": status.get("VmHWM"), "rss_anon": status.get("RssAnon"),
            "rss_file": status.get("RssFile"), "malloc": mallinfo(), "tf_allocator": tf_cpu_allocator()}


def _variable_bytes(variable) -> int:
    shape = variable.shape
    if not shape.is_fully_defined():  # an expanding table: the variable's current rows
        import tensorflow as tf

        shape = tf.compat.v1.get_default_session().run(tf.shape(variable))
    return int(np.prod(shape)) * variable.dtype.base_dtype.size


def _walk(obj, parts: Dict[str, int], part: str, seen: set, depth: int = 4) -> None:
    """Add the numpy arrays reachable through ``obj`` (attributes of mx_rec objects, lists, dicts) to
    ``parts[part]``, each once; a hash index anywhere counts as ``key index``, a DeviceStore's
    ``_pending`` as ``pending flags``."""
    from mx_rec.key_process.hash_index import HashIndex

    if id(obj) in seen or depth < 0:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        parts[part] += obj.nbytes if obj.base is None else 0
    elif isinstance(obj, HashIndex):
        parts["key index"] += obj.nbytes
        seen.update(id(x) for x in vars(obj).values())
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            _walk(x, parts, part, seen, depth - 1)
    elif isinstance(obj, dict):
        for x in obj.values():
            _walk(x, parts, part, seen, depth - 1)
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("mx_rec"):
        for name, x in vars(obj).items():
            _walk(x, parts, "pending flags" if name == "_pending" else part, seen, depth - 1)


def mx_rec_parts(session) -> Dict[str, int]:
    """Parts of every mx_rec table of this process (``export_table_instances``), bytes."""
    from mx_rec.util.initialize import export_table_instances

    parts = dict.fromkeys(PART_NAMES, 0)
    with session.as_default():
        for table in export_table_instances().values():
            parts["rows"] += _variable_bytes(table.variable)
            parts["optimizer slots"] += sum(_variable_bytes(slot) for slot, _ in table.slots.values())
            seen: set = set()
            if table.stats is not None:
                stats = dict.fromkeys(PART_NAMES, 0)
                _walk(table.stats, stats, "admission counters", seen)
                parts["admission counters"] += sum(stats.values())  # its own index included
            changes = dict.fromkeys(PART_NAMES, 0)
            _walk(table.changes, changes, "change log", seen)
            parts["change log"] += sum(changes.values())
            _walk(table.backend, parts, "host structures", seen)
    return parts


def plain_tf_parts(session, table_name: str) -> Dict[str, int]:
    """Plain TF: the table variable and lazy Adam's ``m`` / ``v`` variables of the graph, bytes."""
    import tensorflow as tf

    parts = dict.fromkeys(PART_NAMES, 0)
    for variable in session.graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES):
        name = variable.op.name
        if name == table_name:
            parts["rows"] += _variable_bytes(variable)
        elif name.startswith(f"{table_name}_lazy_adam"):
            parts["optimizer slots"] += _variable_bytes(variable)
    return parts


def tfra_parts(keys_held: int, dim: int, value_bytes: int = 4) -> Dict[str, int]:
    """TFRA: what its three hash tables (rows, Adam's m and v) hold at the least: keys x dim values
    each, and their keys (8 bytes a key in each table) as the index; bytes."""
    parts = dict.fromkeys(PART_NAMES, 0)
    parts["rows"] = keys_held * dim * value_bytes
    parts["optimizer slots"] = 2 * keys_held * dim * value_bytes
    parts["key index"] = 3 * keys_held * 8
    return parts


def breakdown(probe: dict, baseline: dict, keys: int) -> dict:
    """Rows (``parts`` then ``remainder``) of ``probe``'s peak RSS over ``baseline``'s, bytes and bytes
    a key; ``parts + remainder == peak over baseline`` exactly.

    Args:
        probe / baseline: :func:`process_memory` at the end of each probe, the probe with ``parts``
            (from :func:`mx_rec_parts` and the like).
        keys: the keys trained (the per-key divisor).
    """
    peak = probe["peak_rss"] - baseline["peak_rss"]
    end = probe["rss"] - baseline["rss"]
    parts = {name: int(v) for name, v in probe["parts"].items()}
    file_pages = probe["rss_file"] - baseline["rss_file"]
    malloc_free = ((probe["malloc"] or {}).get("free_held", 0) - (baseline["malloc"] or {}).get("free_held", 0))
    state = sum(parts.values())
    remainder = {"peak temporaries": peak - end, "code and files mapped in": file_pages,
                 "freed memory malloc keeps": malloc_free}
    remainder["other anonymous memory"] = end - state - file_pages - malloc_free

    def rows(entries: Dict[str, int]) -> List[dict]:
        return [{"part": n, "bytes": b, "bytes_per_key": b / keys} for n, b in entries.items()]

    return {"peak_over_baseline_bytes": peak, "bytes_per_key": peak / keys, "state_bytes": state,
            "state_bytes_per_key": state / keys, "remainder_bytes": peak - state,
            "remainder_bytes_per_key": (peak - state) / keys, "parts": rows(parts), "remainder": rows(remainder),
            "tf_allocator": probe.get("tf_allocator"), "malloc": probe.get("malloc")}


def format_table(entries: Dict[str, dict]) -> str:
    """A text table of :func:`breakdown` results per system: bytes a key and MB per part."""
    names = list(entries)
    lines = ["part".ljust(28) + "".join(f"{n:>24s}" for n in names)]

    def line(label: str, values: List[Optional[int]], keys_of: List[int]) -> str:
        cells = ["n/a" if v is None else f"{v / 1e6:8.1f} MB {v / k:7.1f} B/key" for v, k in zip(values, keys_of)]
        return label.ljust(28) + "".join(f"{c:>24s}" for c in cells)

    keys_of = [e["keys"] for e in entries.values()]
    for part in PART_NAMES:
        lines.append(line(part, [next(r["bytes"] for r in e["parts"] if r["part"] == part) for e in entries.values()],
                          keys_of))
    lines.append(line("= state", [e["state_bytes"] for e in entries.values()], keys_of))
    for part in REMAINDER_NAMES:
        lines.append(line("  " + part, [next(r["bytes"] for r in e["remainder"] if r["part"] == part)
                                       for e in entries.values()], keys_of))
    lines.append(line("= TF and allocator", [e["remainder_bytes"] for e in entries.values()], keys_of))
    lines.append(line("peak RSS over baseline", [e["peak_over_baseline_bytes"] for e in entries.values()], keys_of))
    return "\n".join(lines)
