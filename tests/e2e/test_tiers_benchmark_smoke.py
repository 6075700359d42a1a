"""benchmarks/tiers.py runs to completion on its small preset and writes every field (no speed checks)."""
import json
import subprocess

from tests.paths import PYTHON, REPO


def test_tiers_benchmark_small_preset(tmp_path):
    out = tmp_path / "tiers.json"
    proc = subprocess.run([PYTHON, str(REPO / "benchmarks" / "tiers.py"), "--preset", "small", "--output", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["modes"]) == {"hbm", "ddr", "ssd"}
    for mode in result["modes"].values():
        assert mode["steps_per_s"] > 0 and 0 <= mode["timed_device_hit_rate"] <= 1
    hbm = result["modes"]["hbm"]["steps_per_s"]
    assert abs(result["ratio_ddr_over_hbm"] - result["modes"]["ddr"]["steps_per_s"] / hbm) < 1e-9
    assert result["first_pass_losses_agree"] is True  # the tiers change where rows live, not the numbers
