"""Every planted bug of every shipped design names a `dsim run` command (in `dsim describe`) that exposes it."""

from __future__ import annotations

import pytest

from simulator.cli import main
from simulator.pipeline import scenario as registry

SHIPPED = ("queue", "raft", "twopc", "email")
CASES = [(name, bug) for name in SHIPPED for bug in registry.get(name).bugs]


def run_cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


@pytest.mark.parametrize("name", SHIPPED)
def test_describe_lists_a_command_for_every_bug(name, capsys):
    """dsim describe shows, beside each planted bug, the full command of bug_commands that exposes it."""
    assert run_cli(["describe", name]) == 0
    out = capsys.readouterr().out
    commands = registry.bug_commands(registry.get(name))
    assert set(commands) == set(registry.get(name).bugs)
    for bug, argv in commands.items():
        line = next(l for l in out.splitlines() if l.strip().startswith(bug + " "))
        assert line.endswith("exposed by: " + registry.bug_command_line(argv))
        assert argv[:2] == ["run", name] and argv[argv.index("--bug") + 1] == bug


@pytest.mark.slow
@pytest.mark.parametrize("name,bug", CASES, ids=[f"{n}-{b}" for n, b in CASES])
def test_bug_command_exits_1(name, bug, tmp_path):
    """The command describe lists for a planted bug runs to an invalid verdict: exit status 1."""
    argv = registry.bug_commands(registry.get(name))[bug]
    assert run_cli([*argv, "--no-plots", "--out", str(tmp_path / "run")]) == 1
