"""The README's two commands are the ones CI runs and the main job the guide names."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)[:2]


def test_readme_opens_with_setup_and_run_then_test():
    run, test = _commands()
    assert run.startswith("python3.11 -m venv .venv") and "pip install torch==2.13.0 &&" in run
    assert run.endswith("snakemake --cores 8 --resources gpu=1")
    assert test.endswith("python -m pytest -q")
    # torch is installed first and pinned, before the package
    assert run.index("torch==2.13.0") < run.index("pip install -e")


def test_ci_runs_the_readme_test_command():
    _, test = _commands()
    ci = (ROOT / ".ci/run").read_text()
    # CI adds -q to pip only; otherwise the same command
    assert test.replace("pip install ", "pip install -q ") in ci
