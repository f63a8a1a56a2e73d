import json
import subprocess
import sys

from dense_retrieval.data.davis import DavisDataset
from tests.conftest import PROJECT_ROOT


def test_env_json(run_cli):
    result = run_cli("env", "--json")
    assert result.exit_code == 0, result
    report = result.json()
    assert report["torch"] and "cuda_available" in report


def test_unknown_command_is_usage_error(run_cli):
    assert run_cli("no-such-command").exit_code == 2


def test_input_error_is_one_line_exit_2(tmp_path):
    """A library InputError reaches the user as one line on stderr, exit 2, no traceback."""
    code = (
        "import typer\n"
        "from dense_retrieval.cli import app\n"
        "from dense_retrieval.data.davis import DavisDataset\n"
        "@app.command('boom')\n"
        "def boom():\n"
        f"    DavisDataset({str(tmp_path / 'missing')!r})\n"
        "app(prog_name='dense-retrieval')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, "boom"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: DAVIS root not found")
    assert "Traceback" not in proc.stderr
    debug = subprocess.run(
        [sys.executable, "-c", code, "--debug", "boom"], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_python_m_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "dense_retrieval", "env", "--json"], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)


def test_davis_layout_reads_mini(davis_mini):
    dataset = DavisDataset(davis_mini, year="2016", split="val")
    assert dataset.sequences == ["blackswan", "car-shadow", "libby", "motocross-jump"]
    labels = dataset.first_frame_labels("blackswan")
    assert labels.shape == (480, 854) and set(labels.ravel().tolist()) == {0, 1}
    assert dataset.num_objects("blackswan") == 1


def test_help_does_not_import_torch():
    """`dense-retrieval --help` and `davis evaluate` stay fast: torch loads only when a command needs it."""
    code = "import sys, dense_retrieval.cli; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert proc.stdout.strip() == "False", proc.stderr
