"""benchmarks/tiers.py runs to completion on its small preset and writes every field (no speed checks)."""
import json
import subprocess

from tests.paths import PYTHON, REPO


def test_tiers_benchmark_small_preset(tmp_path):
    out, readme = tmp_path / "tiers.json", tmp_path / "README.md"
    readme.write_text("# title\n<!-- tiers:begin -->\nold\n<!-- tiers:end -->\ntail\n")
    proc = subprocess.run([PYTHON, str(REPO / "benchmarks" / "tiers.py"), "--preset", "small", "--output", str(out),
                           "--readme", str(readme)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["modes"]) == {"hbm", "ddr", "ssd"}
    for mode in result["modes"].values():
        assert mode["steps_per_s"] > 0 and 0 <= mode["timed_device_hit_rate"] <= 1
        assert mode["cpu_ms_per_step"] > 0 and mode["cores_busy"] > 0
    hbm = result["modes"]["hbm"]["steps_per_s"]
    assert abs(result["ratio_ddr_over_hbm"] - result["modes"]["ddr"]["steps_per_s"] / hbm) < 1e-9
    assert result["first_pass_losses_agree"] is True  # the tiers change where rows live, not the numbers
    assert set(result["by_input"]) == {"pipeline", "feed"} and result["headline_input"] == "pipeline"
    assert result["by_input"]["pipeline"]["modes"]["ddr"]["timed_placed_ahead_share"] > 0  # lookahead ran
    assert result["by_input"]["feed"]["modes"]["ddr"]["timed_placed_ahead_share"] == 0  # fed batches: serial
    text = readme.read_text()
    assert "old" not in text and text.startswith("# title\n<!-- tiers:begin -->") and text.endswith("tail\n")
    assert text.count("| pipeline |") == 3 and text.count("| feed |") == 3
