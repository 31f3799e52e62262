"""Designs shipped as packages: an installed distribution's `dsim.scenarios` entry point adds its scenario.

The test builds a tiny package (the ping design, renamed ping2, an entry point that fails to
import and one that registers nothing), installs it with pip into a temporary virtual environment that sees this one's packages,
and runs `dsim` there. The package carries a build backend of a few lines of its own, so the
install needs neither the network nor the `wheel` package.
"""

from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PING = ROOT / "examples" / "ping" / "ping.py"

PYPROJECT = """\
[build-system]
requires = []
build-backend = "tiny_backend"
backend-path = ["."]

[project]
name = "dsim-ping-demo"
version = "0.1"

[project.entry-points."dsim.scenarios"]
ping2 = "dsim_ping_demo.design"
broken = "dsim_ping_demo.broken"
empty = "dsim_ping_demo"
"""

# A PEP 517 backend that wheels the package folder named like the project; enough for pip install.
BACKEND = '''\
import base64, hashlib, tomllib, zipfile
from pathlib import Path


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    name, version = project["name"].replace("-", "_"), project["version"]
    info = f"{name}-{version}.dist-info"
    files = {str(p): p.read_bytes() for p in sorted(Path(name).rglob("*.py"))}
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\\nName: {project['name']}\\nVersion: {version}\\n".encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: tiny_backend\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    eps = "".join(f"[{group}]\\n" + "".join(f"{k} = {v}\\n" for k, v in items.items())
                  for group, items in project.get("entry-points", {}).items())
    files[f"{info}/entry_points.txt"] = eps.encode()
    record = "".join(f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\\n" for path, data in files.items()) + f"{info}/RECORD,,\\n"
    wheel = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{info}/RECORD", record)
    return wheel
'''


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A temporary venv that sees this interpreter's packages, with dsim-ping-demo 0.1 pip-installed into it."""
    base = tmp_path_factory.mktemp("ep")
    pkg = base / "pkg"
    (pkg / "dsim_ping_demo").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "tiny_backend.py").write_text(BACKEND)
    (pkg / "dsim_ping_demo" / "__init__.py").write_text("")
    (pkg / "dsim_ping_demo" / "design.py").write_text(PING.read_text().replace('name = "ping"', 'name = "ping2"'))
    (pkg / "dsim_ping_demo" / "broken.py").write_text("import a_module_nobody_installed\n")
    env = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = env / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # addsitedir (not a bare path line) so the outer site's own .pth files, an editable dsim's among them, run too
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "_outer_site.pth").write_text(
        f"import site; list(map(site.addsitedir, {outer!r}))\n{ROOT}\n")
    res = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                          str(pkg)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return env


def dsim(venv: Path, *args, cwd):
    return subprocess.run([str(venv / "bin" / "python"), "-m", "simulator.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_list_shows_the_package_design_with_its_distribution_and_the_failed_one(venv, tmp_path):
    """`dsim list` shows ping2 (from dsim-ping-demo 0.1), the broken and empty entry points in one line each, and every
    shipped design."""
    res = dsim(venv, "list", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    ping2 = [line for line in lines if line.split()[0] == "ping2"]
    assert len(ping2) == 1 and "(from dsim-ping-demo 0.1) clients ping one server" in ping2[0]
    assert "broken: failed to load: ModuleNotFoundError: No module named 'a_module_nobody_installed'" in lines
    assert "empty: failed to load: LookupError: dsim_ping_demo registers no scenario" in lines
    assert {line.split()[0] for line in lines} >= {"queue", "raft", "twopc", "email", "ping2"}


def test_package_design_runs_with_its_bug_and_replays(venv, tmp_path):
    """`dsim run ping2 --seed 1` exits 0 there, its planted bug exits 1, and the bug run replays identically."""
    res = dsim(venv, "run", "ping2", "--seed", "1", "--no-plots", "--out", "ok", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    res = dsim(venv, "run", "ping2", "--seed", "1", "--bug", "wrong-seq", "--no-plots", "--out", "bad", cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "INVALID  right-seq" in res.stdout
    res = dsim(venv, "replay", "bad", cwd=tmp_path)
    assert res.returncode == 0 and "identical" in res.stdout, res.stdout + res.stderr


def test_a_design_file_may_not_take_an_installed_designs_name(venv, tmp_path):
    """A design file registering ping2 beside the installed ping2 is refused in one line naming the package."""
    mine = tmp_path / "mine.py"
    mine.write_text(PING.read_text().replace('name = "ping"', 'name = "ping2"'))
    res = dsim(venv, "run", str(mine), "--seed", "1", cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip() == (f"dsim: error: cannot load design {mine}: its scenario name 'ping2' is taken "
                                  "(by package dsim-ping-demo 0.1); rename it")

