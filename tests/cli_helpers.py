"""Calling `dsim` in-process as a user would, for the CLI tests."""

from __future__ import annotations

from simulator.cli import main


def dsim(capsys, *args) -> tuple[int, str, str]:
    """Run ``dsim ARGS`` in this process: (exit status, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err
