"""Command-line arguments of the repository's own scripts (a design's tools under ``scenarios/``,
``benchmarks/``), held to dsim's rule for bad input: one line on stderr naming the bad value and
what is accepted, exit status 2, no traceback, checked before any output or work.

    from simulator import scriptargs as A

    ap = A.Parser(description="...")
    ap.add_argument("--nodes", type=A.integer(2, 1_000_000), default=1000)
    ap.add_argument("--seed", type=A.seed, default=1)
    ap.add_argument("--settle-s", type=A.number(0, 1e6), default=10.0)
    ap.add_argument("--out", type=A.out_file(A.FIGURE_SUFFIXES), default="figure.png")
    args = ap.parse(argv)               # a bad value: "PROG: error: bad value 'x' for --nodes: expected ..."
    if isinstance(args, int):           # printed; 2 to return (0 after --help)
        return args

:class:`Parser` is an ``argparse.ArgumentParser`` whose errors (argparse's own too: an unknown
flag, a missing value, a choice not offered) are that one line, ``PROG: error: MESSAGE``; ``--help``
is unchanged. The checks below are argparse ``type`` callables: given to :class:`Parser`, their
message names the option (``check.value(text, option)`` runs one outside argparse, raising a
UsageError); ``Parser.fail(message)`` reports a check made after parsing the same way.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

from ..engine.errors import UsageError
from ..engine.rng import MAX_SEED
from .config import LIMITS, load_toml  # a run option's bounds (LIMITS["rate"]), a config file read as dsim reads it
from .sweep import MAX_RUNS  # the most runs a sweep takes

__all__ = ["FIGURE_SUFFIXES", "LIMITS", "MAX_RUNS", "Check", "Parser", "check_config", "cluster", "folder_path", "integer", "integers", "names",
           "number", "out_file", "seed", "load_toml", "sets", "text_file"]

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")  # as `dsim plot --out` accepts
_INTEGER = re.compile(r"[+-]?\d{1,30}")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_ARGUMENT = re.compile(r"argument [^:]*: (bad value .*)", re.DOTALL)
_UNKNOWN = re.compile(r"unrecognized arguments: (.*)", re.DOTALL)
_CHOICE = re.compile(r"argument ([^:]*): invalid choice: (.*) \(choose from (.*)\)", re.DOTALL)


class Check:
    """An argparse ``type``: ``convert(text, option)`` returns the value or raises a UsageError whose
    message names ``option``. :class:`Parser` tells each check its option's name."""

    def __init__(self, convert: Callable[[str, str], Any], option: str = "the value"):
        self.convert = convert
        self.option = option
        self.__name__ = getattr(convert, "__name__", "value")  # argparse names a type by it

    def named(self, option: str) -> Check:
        return Check(self.convert, option)

    def value(self, text: str, option: str) -> Any:
        """The value of ``text`` given for ``option``, or a UsageError naming both (for a script that
        does not parse with :class:`Parser`)."""
        return self.convert(text, option)

    def __call__(self, text: str) -> Any:
        try:
            return self.convert(text, self.option)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


def _fmt(x: float) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        x = int(x)
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def _range_words(lo, hi, lo_open: bool = False, integral: bool = False) -> str:
    kind = "an integer" if integral else "a finite number"
    if lo is None and hi is None:
        return kind
    if hi is None:
        return f"{kind} {'>' if lo_open else '>='} {_fmt(lo)}"
    if lo_open:
        return f"{kind} above {_fmt(lo)} and at most {_fmt(hi)}"
    return f"{kind} from {_fmt(lo)} to {_fmt(hi)}"


def _int(text: str, option: str, lo: int, hi: int | None, expected: str) -> int:
    raw = str(text).strip()
    if not raw.isascii() or not _INTEGER.fullmatch(raw):
        raise UsageError(f"bad value {text!r} for {option}: expected {expected}")
    value = int(raw)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise UsageError(f"bad value {text!r} for {option}: expected {expected}")
    return value


def integer(lo: int | None, hi: int | None = None, what: str = "") -> Check:
    """A whole number from ``lo`` to ``hi`` (inclusive; no bound where None)."""
    expected = _range_words(lo, hi, integral=True) + (f" ({what})" if what else "")

    def convert(text: str, option: str) -> int:
        return _int(text, option, lo, hi, expected)

    convert.__name__ = "integer"
    return Check(convert)


def _seed(text: str, option: str) -> int:
    raw = str(text).strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_SEED):
        raise UsageError(f"bad value {text!r} for {option}: expected an integer from 0 to {MAX_SEED}")
    return int(raw)


seed = Check(_seed)
"""A seed, as ``dsim --seed`` takes it: an integer from 0 to 2**63 - 1."""


def number(lo: float, hi: float | None = None, lo_open: bool = False, what: str = "") -> Check:
    """A finite number from ``lo`` (above it, if ``lo_open``) to ``hi`` (inclusive; none if None)."""
    expected = _range_words(lo, hi, lo_open) + (f" ({what})" if what else "")

    def convert(text: str, option: str) -> float:
        raw = str(text).strip()
        if not raw.isascii() or not _NUMBER.fullmatch(raw):
            raise UsageError(f"bad value {text!r} for {option}: expected {expected}")
        value = float(raw)
        if not math.isfinite(value) or value < lo or (lo_open and value == lo) or (hi is not None and value > hi):
            raise UsageError(f"bad value {text!r} for {option}: expected {expected}")
        return value

    convert.__name__ = "number"
    return Check(convert)


def integers(lo: int, hi: int | None = None, increasing: bool = False, what: str = "") -> Check:
    """A comma-separated list of whole numbers from ``lo`` to ``hi``: no empty item, none twice (and
    each larger than the one before, if ``increasing``)."""
    words = _range_words(lo, hi, integral=True).replace("an integer", "increasing integers" if increasing else "integers")
    expected = f"{words}, comma-separated" + ("" if increasing else ", each once") + (f" ({what})" if what else "")

    def convert(text: str, option: str) -> list[int]:
        items = str(text).split(",")
        values = [_int(x, option, lo, hi, expected) if x.strip() else None for x in items]
        if (None in values or len(set(values)) != len(values)
                or (increasing and any(a >= b for a, b in pairwise(values)))):
            raise UsageError(f"bad value {text!r} for {option}: expected {expected}")
        return values

    convert.__name__ = "integers"
    return Check(convert)


def names(accepted: tuple[str, ...] | list[str]) -> Check:
    """A comma-separated list of some of ``accepted``: no empty item, none twice."""
    expected = f"a comma-separated list of {', '.join(accepted)} (each at most once)"

    def convert(text: str, option: str) -> list[str]:
        items = [x.strip() for x in str(text).split(",")]
        for x in items:
            if x not in accepted:
                raise UsageError(f"bad value {x!r} in {text!r} for {option}: expected {expected}")
        if len(set(items)) != len(items):
            raise UsageError(f"bad value {text!r} for {option}: expected {expected}")
        return items

    convert.__name__ = "names"
    return Check(convert)


def sets(items: list[str], reserved: dict[str, str] | None = None) -> dict[str, str]:
    """``--set K=V`` items as a dict: each key once, and not one of ``reserved`` (key -> why the
    script sets it itself, e.g. ``{"policy": "the policy is swept by --policies"}``); a UsageError
    (one line) otherwise. The keys' names and values are checked where the config is built."""
    out: dict[str, str] = {}
    for kv in items:
        key, sep, value = kv.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"bad value {kv!r} for --set: expected key=value")
        if key in out:
            raise UsageError(f"bad value {kv!r} for --set: {key!r} is already set to {out[key]!r}; expected each key once")
        if reserved and key in reserved:
            raise UsageError(f"bad value {kv!r} for --set: {reserved[key]}; expected another parameter")
        out[key] = value
    return out


def folder_path(text: str, option: str) -> Path:
    """An output folder named by ``option``: there already, or one that can be made; a UsageError
    (one line) otherwise. Scripts add what must not be in the way inside it."""
    raw = str(text)
    if not raw.strip() or "\0" in raw:
        raise UsageError(f"bad value {text!r} for {option}: expected a folder path")
    path = Path(raw)
    if path.exists() and not path.is_dir():
        raise UsageError(f"bad value {text!r} for {option}: it exists and is not a folder; expected a folder")
    parent = next((p for p in [path, *path.absolute().parents] if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"bad value {text!r} for {option}: cannot write there; expected a folder that can be created")
    return path


def out_file(suffixes: tuple[str, ...] = ()) -> Check:
    """A file to write: not empty, in an existing writable folder, not a folder itself, and ending
    one of ``suffixes`` (if any). Checked when parsed, before anything runs."""

    def convert(text: str, option: str) -> Path:
        raw = str(text)
        if not raw.strip() or "\0" in raw:
            raise UsageError(f"bad value {text!r} for {option}: expected a file path")
        path = Path(raw)
        if path.is_dir():
            raise UsageError(f"bad value {text!r} for {option}: it is a folder; expected a file path")
        if suffixes and path.suffix.lower() not in suffixes:
            raise UsageError(f"bad value {text!r} for {option}: expected a file name ending {', '.join(suffixes)}")
        if path.exists() and not path.is_file():
            raise UsageError(f"bad value {text!r} for {option}: not a regular file; expected a file path")
        folder = path.parent
        if not folder.is_dir():
            raise UsageError(f"bad value {text!r} for {option}: no folder {str(folder)!r}; "
                             "expected a file in an existing folder")
        if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise UsageError(f"bad value {text!r} for {option}: not writable; expected a file path that can be written")
        return path

    convert.__name__ = "out_file"
    return Check(convert)


def _text_file(text: str, option: str) -> Path:
    raw = str(text)
    path = Path(raw)
    if not raw.strip() or "\0" in raw or not path.exists():
        raise UsageError(f"bad value {text!r} for {option}: no such file; expected an existing file")
    if not path.is_file():
        raise UsageError(f"bad value {text!r} for {option}: not a regular file; expected an existing file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"bad value {text!r} for {option}: not readable; expected a file that can be read")
    return path


text_file = Check(_text_file)
"""An existing regular file that can be read (its contents are the script's to check)."""


def _cluster(text: str, option: str) -> str:
    from importlib.util import find_spec

    from .executor import INSTALL_HINT, parse_cluster

    try:
        parse_cluster(text)
    except UsageError as exc:
        raise UsageError(str(exc).replace("for --cluster", f"for {option}", 1)) from None
    if find_spec("distributed") is None:
        raise UsageError(f"bad value {text!r} for {option}: Dask's distributed package is not installed; "
                         f"expected it installed first ({INSTALL_HINT})")
    return str(text).strip()


cluster = Check(_cluster)
"""A Dask cluster as ``dsim sweep --cluster`` takes it: ``local:N`` or ``tcp://HOST:PORT``."""


def check_config(cfg) -> None:
    """Build ``cfg``'s design once without running it, as ``dsim sweep`` does before its first run: a
    UsageError if the design refuses its parameters (``build_config`` has checked the rest)."""
    from .config import dry_build

    dry_build(cfg)


class Parser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` whose every error is one line, ``PROG: error: MESSAGE``, and
    exit status 2 (argparse's own print the usage first); ``--help`` is unchanged."""

    def add_argument(self, *args, **kwargs):
        check = kwargs.get("type")
        if isinstance(check, Check):
            longs = [a for a in args if a.startswith("--")]
            kwargs["type"] = check.named(longs[0] if longs else (args[0] if args else kwargs.get("dest", "value")))
        return super().add_argument(*args, **kwargs)

    def error(self, message: str):
        m = _ARGUMENT.fullmatch(message)  # "argument --x: bad value ...": the check's message names the option
        c = _CHOICE.fullmatch(message)
        u = _UNKNOWN.fullmatch(message)
        if m:
            message = m.group(1)
        elif u:
            message = f"bad value {u.group(1)!r}: unrecognized arguments; expected those --help lists"
        elif c:
            option, accepted = c.group(1).split("/")[0], c.group(3).replace("'", "")
            message = f"bad value {c.group(2)} for {option}: expected one of {accepted}"
        self.fail(message)

    def fail(self, message: str):
        """Print ``PROG: error: MESSAGE`` (one line) and exit with status 2."""
        line = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {line}\n")

    def parse(self, args=None) -> argparse.Namespace | int:
        """``parse_args``, for a ``main(argv) -> int``: the arguments, or the exit status to return (2
        once the bad argument's line is printed, 0 after ``--help``)."""
        try:
            return self.parse_args(args)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 2

    def parse_args(self, args=None, namespace=None):
        try:
            return super().parse_args(args, namespace)
        except UsageError as exc:  # a check called outside argparse's own handling (a default, say)
            self.fail(str(exc))

