"""Turn a peers JSON into a PNG chart, a README section and a console summary.

The README section sits between ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` and is rewritten
whole (appended at the end when the markers are missing). Regenerate it from a JSON with::

    .venv/bin/python -m benchmarks.peers.report benchmarks/results/peers.json --readme README.md
"""
import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from benchmarks.readme_block import replace_block

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
LABELS = {"mx_rec_hbm": "mx_rec HBM", "mx_rec_hbm_tf_ops": "mx_rec HBM, TF ops", "mx_rec_ddr": "mx_rec DDR", "mx_rec_ssd": "mx_rec SSD",
          "tfra": "TFRA 0.7.0", "plain_tf": "plain TF (mod hash)"}


def _fmt(x: Optional[float], spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def write_chart(result: dict, path: Path) -> Optional[str]:
    """Bar charts of micro keys/s, DLRM samples/s and bytes per key; returns the path, or None
    when matplotlib is missing (it lives in the benchmark environment only)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = result["systems_run"]
    panels = [("micro", "keys_per_s", 1e-6, "lookup+update, M keys/s"),
              ("dlrm", "samples_per_s", 1e-3, "DLRM training, k samples/s")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (workload, key, scale, title) in zip(axes, panels):
        systems = result["workloads"][workload]["systems"]
        values = [systems[n][key] * scale for n in names]
        colors = ["C0" if n.startswith("mx_rec") else "C1" for n in names]
        bars = ax.bar([LABELS[n] for n in names], values, color=colors)
        for bar, n in zip(bars, names):
            ratio = systems[n].get("ratio_to_plain_tf")
            if ratio is not None:
                ax.annotate(f"{ratio:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=8)
        ax.set_title(title + " (x = vs plain TF)", fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    mem = result["memory"]["systems"]
    mem_names = [n for n in names if n in mem]
    axes[2].bar([LABELS[n] for n in mem_names], [mem[n]["bytes_per_key"] for n in mem_names], color="C2")
    axes[2].axhline(result["memory"]["raw_row_bytes"], color="k", ls="--", lw=1, label="raw row (64 B)")
    axes[2].axhline(result["memory"]["raw_row_with_adam_slots_bytes"], color="gray", ls=":", lw=1,
                    label="row + Adam slots")
    axes[2].set_title(f"peak RSS per key over baseline ({result['memory']['keys']:,} keys)", fontsize=10)
    axes[2].legend(fontsize=8)
    axes[2].tick_params(axis="x", labelrotation=30, labelsize=8)
    s = result["settings"]
    fig.suptitle(f"batch {s['batch_size']} x {s['fields']} ids, Zipf({s['zipf_a']}) over {s['num_keys']:,} keys, "
                 f"dim {s['dim']}; median of {s['rounds']} alternating rounds; "
                 f"{result['machine']['cpus_usable']} CPUs", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def section(result: dict, json_rel: str) -> str:
    """The README section (markers included) for ``result``."""
    s, m = result["settings"], result["machine"]
    micro, dlrm = result["workloads"]["micro"]["systems"], result["workloads"]["dlrm"]["systems"]
    lines: List[str] = [
        BEGIN,
        "## Benchmarks against peers",
        "",
        f"`{result['command']}` runs, in one invocation and on the same generated batches "
        f"({s['batch_size']} x {s['fields']} Zipf({s['zipf_a']}) ids over {s['num_keys']:,} keys, a pool of "
        f"{s['pool_batches']} batches holding {result['data']['distinct_keys_in_pool']:,} distinct keys, "
        f"{s['dense']} dense features, dim {s['dim']}), a lookup + lazy-Adam update microbenchmark and DLRM "
        "training (the zoo's model) for mx_rec in its three modes, TFRA 0.7.0 `dynamic_embedding` "
        "(installed only in the benchmark environment, `tools/bench_env.sh`) and plain TF (one "
        "`tf.Variable`, ids hashed `mod` its rows: no collision handling, the speed upper bound). "
        f"Each system runs in its own process; figures are medians of {s['rounds']} alternating rounds "
        f"on {m['cpus_usable']} CPUs shared with other work (1-min load average {_fmt(m['load_average_before'][0])} "
        f"before, {_fmt(m['load_average_after'][0])} after; ratios come from the same rounds). "
        f"Generated from `{json_rel}` (chart: `{Path(json_rel).with_suffix('.png')}`).",
        "",
        "| system | micro steps/s | M keys/s | vs plain TF | DLRM samples/s | vs plain TF |",
        "|---|---|---|---|---|---|",
    ]
    for n in result["systems_run"]:
        lines.append(f"| {LABELS[n]} | {micro[n]['steps_per_s']:.1f} | {micro[n]['keys_per_s'] / 1e6:.2f} | "
                     f"{_fmt(micro[n].get('ratio_to_plain_tf'))}x | {dlrm[n]['samples_per_s']:,.0f} | "
                     f"{_fmt(dlrm[n].get('ratio_to_plain_tf'))}x |")
    if not result["tfra"]["ran"]:
        lines += ["", f"TFRA was not run: {result['tfra'].get('reason', 'unknown')}."]
    lines += ["", "| target (mx_rec HBM) | ratio | met | ratio if mx_rec were as fast as plain TF |",
              "|---|---|---|---|"]
    for key, t in result["targets"].items():
        workload, ref = key.split("_mx_rec_hbm_over_")
        lines.append(f"| {workload}: mx_rec HBM / {LABELS[ref]} >= {t['target']} | {_fmt(t['ratio'], '.3f')} | "
                     f"{'n/a' if t['met'] is None else ('yes' if t['met'] else 'no')} | "
                     f"{_fmt(t.get('ratio_if_as_fast_as_plain_tf'), '.3f')} |")
    mem = result["memory"]
    lines += ["", f"Peak RSS over a baseline process after training {mem['keys']:,} distinct keys (dim {mem['dim']}, "
              f"lazy Adam; raw row {mem['raw_row_bytes']} B, with Adam's two slots {mem['raw_row_with_adam_slots_bytes']} B):",
              "", "| system | MiB per 10^6 keys | bytes/key | x raw row |", "|---|---|---|---|"]
    for n, e in mem["systems"].items():
        lines.append(f"| {LABELS[n]} | {e['peak_rss_per_1e6_keys_bytes'] / 2**20:.0f} | {e['bytes_per_key']:.0f} | "
                     f"{e['bytes_per_key_over_raw_row']:.2f} |")
    lines += _memory_parts_lines(mem)
    lines += _profile_lines(result)
    lines += [END]
    return "\n".join(lines) + "\n"


def _memory_parts_lines(mem: dict) -> List[str]:
    """Bytes a key of each part of the peak above (``benchmarks/peers/memory_parts.py``); none for a
    JSON written before the breakdown existed."""
    systems = {n: e["breakdown"] for n, e in mem["systems"].items() if "breakdown" in e}
    if not systems:
        return []
    names = list(systems)
    lines = ["", "Each byte of that peak with its owner, bytes per key: the table's parts from exact sizes "
             "(TF variables' shapes, numpy arrays' sizes; TFRA: keys x (key + row) in each of its three hash "
             "tables), then the rest, split with `/proc/self/status` and glibc's `mallinfo2` at the end of the probe "
             "(`python -m benchmarks.peers.memory --parts --system mx_rec_hbm --keys N` prints it alone):", "",
             "| part | " + " | ".join(LABELS[n] for n in names) + " |", "|---" * (len(names) + 1) + "|"]

    def row(label: str, values: List[float]) -> str:
        return f"| {label} | " + " | ".join(f"{v:.1f}" for v in values) + " |"

    for part in [r["part"] for r in systems[names[0]]["parts"]]:
        values = [next(r["bytes_per_key"] for r in systems[n]["parts"] if r["part"] == part) for n in names]
        if any(values):
            lines.append(row(part, values))
    lines.append(row("**table state**", [systems[n]["state_bytes_per_key"] for n in names]))
    for part in [r["part"] for r in systems[names[0]]["remainder"]]:
        lines.append(row(f"TF and allocator: {part}",
                         [next(r["bytes_per_key"] for r in systems[n]["remainder"] if r["part"] == part) for n in names]))
    lines.append(row("**TF and allocator**", [systems[n]["remainder_bytes_per_key"] for n in names]))
    lines.append(row("**peak RSS over baseline**", [systems[n]["bytes_per_key"] for n in names]))
    return lines


def _profile_lines(result: dict) -> List[str]:
    """Where mx_rec HBM's step goes: top ops of the TF trace, and py-spy's host-side share."""
    profiles = result.get("profiles", {})
    if "micro" not in profiles:
        return []
    lines = ["", "Where mx_rec HBM's step goes (TF op trace, summed over 2 threads; py-spy for the host-side "
             "Python and numba work, as a share of wall time):", ""]
    for workload, entry in profiles.items():
        trace = entry.get("op_trace_mx_rec_hbm")
        if not trace:
            continue
        ops = ", ".join(f"`{e['name']}` {e['ms_per_step']:.1f}" for e in trace["by_name"][:5])
        line = (f"- {workload}: {trace['wall_ms_per_step']:.0f} ms/step wall "
                f"(plain TF {entry.get('op_trace_plain_tf', {}).get('wall_ms_per_step', float('nan')):.0f}); "
                f"top ops (ms/step): {ops}")
        spy = entry.get("pyspy_mx_rec_hbm", {})
        if spy.get("busy_python_share_of_wall") is not None:
            top = ", ".join(f"`{e['name'].split('/')[-1]}` {100 * e['share_of_wall']:.1f}%"
                            for e in spy["self"][:4])
            line += f"; host Python busy {100 * spy['busy_python_share_of_wall']:.0f}% of wall: {top}"
        lines.append(line)
    return lines


def update_readme(readme: Path, json_path: Path, repo: Path) -> None:
    """Rewrite ``readme``'s bench section from the JSON at ``json_path``."""
    result = json.loads(json_path.read_text(encoding="utf-8"))
    try:
        json_rel = str(json_path.resolve().relative_to(repo))
    except ValueError:
        json_rel = str(json_path)
    replace_block(readme, section(result, json_rel), BEGIN, END)


def summary(result: dict) -> str:
    """A few console lines: each system's rates and ratios, the targets, memory per key."""
    out = []
    for workload, entry in result["workloads"].items():
        for n, e in entry["systems"].items():
            out.append(f"  {workload:5s} {LABELS[n]:20s} {e['steps_per_s']:8.2f} steps/s {e[entry['unit']]:14,.0f} "
                       f"{entry['unit']}  x plain {_fmt(e.get('ratio_to_plain_tf'), '.3f')}")
    for key, t in result["targets"].items():
        out.append(f"  target {key} >= {t['target']}: {_fmt(t['ratio'], '.3f')} met={t['met']}")
    for n, e in result["memory"]["systems"].items():
        parts = (f"; table state {e['breakdown']['state_bytes_per_key']:.0f}, TF and allocator "
                 f"{e['breakdown']['remainder_bytes_per_key']:.0f}" if "breakdown" in e else "")
        out.append(f"  memory {LABELS[n]:20s} {e['bytes_per_key']:8.0f} bytes/key ({e['bytes_per_key_over_raw_row']:.2f}x "
                   f"raw row{parts})")
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", type=Path)
    parser.add_argument("--readme", type=Path)
    parser.add_argument("--chart", type=Path)
    args = parser.parse_args(argv)
    result = json.loads(args.json.read_text(encoding="utf-8"))
    if args.chart:
        print(write_chart(result, args.chart))
    if args.readme:
        update_readme(args.readme, args.json, Path(__file__).resolve().parents[2])
    print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
