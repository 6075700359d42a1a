"""The lookup + update benchmark runs end to end on its small preset and writes a complete JSON.

Only the shape and consistency of the report are checked, never the speed.
"""
import json
import subprocess

import pytest

from tests.paths import PYTHON, REPO

SCRIPT = REPO / "benchmarks" / "lookup_update.py"
SYSTEMS = ("mx_rec", "plain_tf")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    output = tmp_path_factory.mktemp("bench") / "x.json"
    proc = subprocess.run([str(PYTHON), str(SCRIPT), "--preset", "small", "--output", str(output)],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"benchmark failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    assert "ratio mx_rec/plain" in proc.stdout
    return json.loads(output.read_text(encoding="utf-8"))


def test_report_has_settings_and_machine(report):
    assert report["benchmark"] == "lookup_update"
    assert report["timestamp"]
    settings = report["settings"]
    assert settings["preset"] == "small"
    assert settings["ids_per_step"] == settings["batch_size"] * settings["fields"]
    for key in ("num_keys", "dim", "rounds", "steps", "pool_batches", "zipf_a"):
        assert settings[key] > 0, key
    machine = report["machine"]
    assert machine["cpu_count"] >= 1
    for key in ("platform", "python", "tensorflow", "numpy", "numba"):
        assert isinstance(machine[key], str) and machine[key], key


def test_each_system_has_positive_rates(report):
    settings = report["settings"]
    for name in SYSTEMS:
        result = report["systems"][name]
        assert result["steps_per_s"] > 0 and result["keys_per_s"] > 0, name
        assert result["keys_per_s"] == pytest.approx(result["steps_per_s"] * settings["ids_per_step"])
        assert len(result["round_steps_per_s"]) == settings["rounds"]
        assert all(rate > 0 for rate in result["round_steps_per_s"])
        first = report["first_pass"][name]
        assert first["steps_per_s"] > 0 and first["keys_per_s"] > 0, name
        assert first["steps"] == settings["pool_batches"] - 1


def test_ratio_is_the_ratio_of_the_step_rates(report):
    systems = report["systems"]
    expected = systems["mx_rec"]["steps_per_s"] / systems["plain_tf"]["steps_per_s"]
    assert report["ratio_mx_rec_over_plain"] > 0
    assert report["ratio_mx_rec_over_plain"] == pytest.approx(expected, rel=1e-9)
    assert report["ratio_paired_rounds_median"] > 0


def test_both_systems_train_the_same_model(report):
    data = report["data"]
    assert data["mx_rec_table_size"] == data["distinct_keys_in_pool"] > 0
    assert data["unique_keys_per_batch_mean"] > 0
    assert data["first_pass_loss_max_rel_diff"] < 1e-4
