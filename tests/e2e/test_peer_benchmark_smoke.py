"""``python -m benchmarks.peers --preset small`` runs to completion and writes every field (no speed checks).

It builds the benchmark environment (tools/bench_env.sh: TFRA 0.7.0, matplotlib, py-spy; ~15 s from
wheels, cached afterwards) when it is missing, so TFRA must have run; the README it rewrites is a copy.
"""
import json
import shutil
import subprocess

from tests.paths import PYTHON, REPO

SYSTEMS = {"mx_rec_hbm", "mx_rec_hbm_tf_ops", "mx_rec_ddr", "mx_rec_ssd", "tfra", "plain_tf"}


def test_peer_benchmark_small_preset(tmp_path):
    out, readme = tmp_path / "peers.json", tmp_path / "README.md"
    shutil.copy(REPO / "README.md", readme)
    before = readme.read_text()
    proc = subprocess.run([PYTHON, "-m", "benchmarks.peers", "--preset", "small", "--output", str(out),
                           "--readme", str(readme)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())

    assert result["tfra"]["ran"] is True and result["tfra"]["version"] == "0.7.0", result["tfra"]
    assert set(result["systems_run"]) == SYSTEMS
    assert result["settings"]["rounds"] >= 5 and "benchmarks.peers" in result["command"]
    assert result["versions"]["tensorflow-cpu"] == "2.15.1"
    assert len(result["machine"]["load_average_before"]) == 3
    for workload, unit in (("micro", "keys_per_s"), ("dlrm", "samples_per_s")):
        entry = result["workloads"][workload]
        assert entry["unit"] == unit and set(entry["systems"]) == SYSTEMS
        base = entry["systems"]["plain_tf"]["steps_per_s"]
        for system in entry["systems"].values():
            assert system["steps_per_s"] > 0 and len(system["round_steps_per_s"]) == result["settings"]["rounds"]
            assert abs(system["ratio_to_plain_tf"] - system["steps_per_s"] / base) < 1e-9
            assert system[unit] == system["steps_per_s"] * entry["per_step"]
    assert set(result["targets"]) == {"dlrm_mx_rec_hbm_over_plain_tf", "dlrm_mx_rec_hbm_over_tfra",
                                      "micro_mx_rec_hbm_over_plain_tf"}
    assert all(isinstance(t["met"], bool) for t in result["targets"].values())
    memory = result["memory"]
    assert memory["raw_row_bytes"] == 64 and set(memory["systems"]) == {"mx_rec_hbm", "tfra", "plain_tf"}
    for probe in memory["systems"].values():
        assert probe["keys_held"] > 0 and "bytes_per_key" in probe and "peak_rss_per_1e6_keys_bytes" in probe
    for workload in ("micro", "dlrm"):
        profile = result["profiles"][workload]
        assert profile["op_trace_mx_rec_hbm"]["by_type"] and profile["op_trace_plain_tf"]["by_type"]
        assert "samples" in profile["pyspy_mx_rec_hbm"] or "error" in profile["pyspy_mx_rec_hbm"]
    assert result["chart"] and (tmp_path / "peers.png").stat().st_size > 0
    text = readme.read_text()
    assert text.count("<!-- bench:begin -->") == 1 and text.count("<!-- bench:end -->") == 1
    assert text.startswith(before.split("<!-- bench:begin -->")[0].rstrip("\n"))  # the rest is kept
