"""The README's two commands and CI agree."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = text.split("```sh")[1:3]
    return [b.split("```")[0].strip() for b in blocks]


def test_readme_opens_with_run_and_test_commands():
    """The README's first command installs and runs a scenario; the second installs and runs the tests."""
    run_cmd, test_cmd = _commands()
    assert "pip install" in run_cmd and "dsim run" in run_cmd
    assert "pip install" in test_cmd and "pytest" in test_cmd


def test_ci_runs_exactly_the_readme_test_command():
    """.ci/run contains the README's test command verbatim."""
    _, test_cmd = _commands()
    assert test_cmd in (ROOT / ".ci" / "run").read_text()
