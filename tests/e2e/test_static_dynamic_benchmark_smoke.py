"""benchmarks/static_dynamic.py runs both modes on 1 and 2 ranks with --quick and writes every field.

The JSON's structure and the modes' identical losses are checked, never the speed.
"""
import json
import subprocess

import pytest

from tests.paths import PYTHON, REPO, launch_env


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("static_dynamic")
    output, readme = tmp / "x.json", tmp / "README.md"
    readme.write_text("# title\n<!-- static_dynamic:begin -->\nold\n<!-- static_dynamic:end -->\ntail\n")
    proc = subprocess.run([PYTHON, str(REPO / "benchmarks" / "static_dynamic.py"), "--quick", "--output", str(output),
                           "--readme", str(readme)], cwd=REPO, env=launch_env({}), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads(output.read_text(encoding="utf-8")), readme.read_text(encoding="utf-8")


def test_report_has_settings_machine_and_source(run):
    report, _ = run
    assert report["benchmark"] == "static_dynamic" and report["timestamp"]
    settings = report["settings"]
    assert settings["preset"] == "quick" and settings["fields"] == 29 and settings["dim"] == 144
    assert settings["send_count"] > settings["batch_size"] * settings["fields"]  # far more than a batch's keys
    assert report["machine"]["cpu_count"] >= 1 and report["source"]["mx_rec_path"]
    assert report["target_ratio"] == 0.9


@pytest.mark.parametrize("ranks", [1, 2])
def test_each_rank_count_has_both_modes_and_their_ratio(run, ranks):
    report, _ = run
    settings, result = report["settings"], report["by_ranks"][str(ranks)]
    assert result["ranks"] == ranks
    modes = result["modes"]
    assert set(modes) == {"static", "dynamic"}
    for mode in modes.values():
        assert mode["steps_per_s"] > 0 and len(mode["round_steps_per_s"]) == settings["rounds"]
        assert mode["cpu_ms_per_step"] > 0
    assert modes["static"]["send_count"] == settings["send_count"] // ranks and modes["dynamic"]["send_count"] is None
    expected = modes["static"]["steps_per_s"] / modes["dynamic"]["steps_per_s"]
    assert result["ratio_static_over_dynamic"] == pytest.approx(expected, rel=1e-9)
    assert result["ratio_paired_rounds_median"] > 0
    assert 0 < result["distinct_keys_per_batch_mean"] <= settings["batch_size"] * settings["fields"]
    # static shapes change how a batch travels, not the numbers
    losses = result["first_pass_losses"]
    assert len(losses["static"]) == settings["pool_batches"] and result["losses_identical"] is True
    assert losses["static"] == losses["dynamic"] and result["first_pass_loss_max_abs_diff"] == 0


def test_readme_block_is_replaced_with_one_row_per_rank_count(run):
    _, text = run
    assert "old" not in text and text.startswith("# title\n<!-- static_dynamic:begin -->") and text.endswith("tail\n")
    assert text.count("\n| 1 | ") == 1 and text.count("\n| 2 | ") == 1
