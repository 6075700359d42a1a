"""Data for the compat scripts, converted once per session by the repository's own tools, and a
per-module memo of launches (several tests compare the same runs)."""
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from tests.compat.harness import convert_census, convert_criteo, empty_data_folder, launch

_LAUNCHES: List[Tuple[str, float]] = []  # (run name, CPU seconds) of every job launched this session


@pytest.fixture(scope="session")
def census_data(tmp_path_factory) -> Path:
    return convert_census(tmp_path_factory.mktemp("compat_data") / "census")


@pytest.fixture(scope="session")
def criteo_data(tmp_path_factory) -> Path:
    return convert_criteo(tmp_path_factory.mktemp("compat_data") / "criteo")


@pytest.fixture(scope="session")
def no_data(tmp_path_factory) -> Path:
    return empty_data_folder(tmp_path_factory.mktemp("compat_data"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``runs(script, ranks, data, **switches)``: the job's combined result, launched once per
    module for each distinct (script, ranks, switches)."""
    memo: Dict[Tuple, Dict] = {}

    def run(script: str, ranks: int, data: Path, **switches: str) -> Dict:
        key = (script, ranks, tuple(sorted(switches.items())))
        if key not in memo:
            name = "_".join([script, f"{ranks}r", *(f"{k}{v}" for k, v in sorted(switches.items()))])
            try:
                memo[key] = launch(script, ranks, switches, data, tmp_path_factory.mktemp(name[:80]))
                _LAUNCHES.append((name, memo[key]["cpu_s"]))
            except AssertionError as err:  # a failed job fails every test that needs it, launched once
                memo[key] = err
        if isinstance(memo[key], AssertionError):
            raise memo[key]
        return memo[key]

    return run


def pytest_terminal_summary(terminalreporter):
    """How much CPU the compat jobs took (the figure to budget CI by: wall time depends on the load)."""
    if _LAUNCHES:
        total = sum(cpu for _, cpu in _LAUNCHES)
        terminalreporter.write_line(f"compat: {len(_LAUNCHES)} successful launches, {total:.0f} CPU s in all "
                                    f"(max {max(cpu for _, cpu in _LAUNCHES):.0f} s: "
                                    f"{max(_LAUNCHES, key=lambda item: item[1])[0]})")
