"""Where the zoo's code lives: no script edits its import path, the record format is the SDK's
(``mx_rec.data``, standing only on the ground floor), the tools run as modules, and every
``main_mxrec.py`` of the Criteo / census models makes the SDK calls itself."""
import ast
import subprocess
from pathlib import Path

import pytest

from tests.paths import PYTHON, REPO

SOURCES = ("tools", "models", "mx_rec_py")
SDK_CALLS = ("init", "create_table", "sparse_lookup", "get_dense_and_sparse_variable", "apply_gradients",
             "start_asc_pipeline", "modify_graph_and_start_emb_cache", "Saver", "terminate_config_initializer")


def _python_files(*folders: str):
    for folder in folders:
        yield from sorted((REPO / folder).rglob("*.py"))


def _called_names(path: Path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def test_no_source_edits_its_import_path():
    edits = []
    for path in _python_files(*SOURCES):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                    and node.value.id == "sys"):
                edits.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not edits, f"sys.path used (import as packages instead): {edits}"


def test_the_data_room_stands_on_the_ground_floor_only():
    for path in _python_files("mx_rec_py/mx_rec/data"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for module in modules:
                if module.startswith("mx_rec"):
                    assert module.startswith(("mx_rec.data", "mx_rec.system")), f"{path.name} imports {module}"


@pytest.mark.parametrize("model", ["dlrm", "wide_deep", "mmoe"])  # dcnv2 runs DLRM's script, see below
def test_each_script_makes_the_sdk_calls_itself(model):
    script = REPO / "models" / model / "main_mxrec.py"
    missing = set(SDK_CALLS) - _called_names(script)
    assert not missing, f"models/{model}/main_mxrec.py does not call {sorted(missing)}"
    assert "create_hash_optimizer" in script.read_text(encoding="utf-8"), f"{model}: no hash optimizer"


def test_tools_run_as_modules_from_the_checkout():
    proc = subprocess.run([PYTHON, "-m", "tools.criteo.synthetic", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "--output_path" in proc.stdout, proc.stderr


def test_dcnv2_runs_dlrms_script_with_its_own_network():
    """DCNv2 trains as DLRM does: its script hands DLRM's its network and settings, and repeats nothing."""
    names = _called_names(REPO / "models" / "dcnv2" / "main_mxrec.py")
    assert "train_criteo_model" in names and "create_table" not in names
