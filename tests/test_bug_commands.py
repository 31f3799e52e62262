"""Every planted bug of every shipped design (and of the example design run by path) names a `dsim run`
command, shown by `dsim describe`, that exposes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.cli import main
from simulator.pipeline import scenario as registry

PING = str(Path(__file__).resolve().parent.parent / "examples" / "ping" / "ping.py")
SHIPPED = (*registry.names(), PING)
CASES = [(name, bug) for name in SHIPPED for bug in registry.resolve(name).bugs]


def commands_of(name: str) -> dict[str, list[str]]:
    return registry.bug_commands(registry.resolve(name), name if registry.is_design_path(name) else None)


def run_cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


@pytest.mark.parametrize("name", SHIPPED, ids=lambda n: Path(n).name)
def test_describe_lists_a_command_for_every_bug(name, capsys):
    """dsim describe shows, beside each planted bug, the full command of bug_commands that exposes it."""
    assert run_cli(["describe", name]) == 0
    out = capsys.readouterr().out
    commands = commands_of(name)
    assert set(commands) == set(registry.resolve(name).bugs)
    lines = out.splitlines()
    for bug, argv in commands.items():
        at = next(i for i, l in enumerate(lines) if l.strip().startswith(bug + " "))
        assert lines[at + 1].strip() == "exposed by: " + registry.bug_command_line(argv)
        assert argv[:2] == ["run", name] and argv[argv.index("--bug") + 1] == bug


@pytest.mark.slow
@pytest.mark.parametrize("name,bug", CASES, ids=[f"{Path(n).stem}-{b}" for n, b in CASES])
def test_bug_command_exits_1(name, bug, tmp_path):
    """The command describe lists for a planted bug runs to an invalid verdict: exit status 1."""
    argv = commands_of(name)[bug]
    assert run_cli([*argv, "--no-plots", "--out", str(tmp_path / "run")]) == 1
