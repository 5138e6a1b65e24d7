"""Run the test command's legs (.ci/matrix.toml): each in its own venv, each reported.

A leg's Python is a version such as "3.13", looked up in this order: $MONGOPOOL_PYTHON_<major>_<minor> (a path),
``python3.X`` on PATH, pyenv's versions, ``uv python find``; when there is none, a Debian 13
(trixie) root with that Python is built once with debootstrap into the cache
(``$MONGOPOOL_CACHE_DIR/debian-trixie-*``, beside FerretDB) and the leg runs inside it through
``chroot`` in a private mount namespace (``unshare``: the repository, the pip cache, /proc, /dev
and /sys are bind-mounted there and disappear with the leg). MONGOPOOL_MATRIX_CHROOT=1 uses the
Debian root even when such a Python is installed.

Every leg prints what it ran (Python, Django, pymongo, django-mongodb-backend) and its result; a
leg that cannot run (no Python, a failed install, a root that cannot be built) is a failure,
never a skip. The exit status is 0 only when every leg passed.

Legs run two at a time by default (``--jobs N``; a leg mostly waits on its servers, so two
share the machine's cores well); each leg's output goes to ``$MONGOPOOL_CACHE_DIR/matrix/<checkout>/<leg>.log``
and is printed whole when the leg ends. With ``--jobs 1`` legs run one after the other, printing
as they go.

Usage: python scripts/matrix.py [--jobs N] [LEG ...] [PYTEST-OPTION ...]   (all legs by default)
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
# Two checkouts may share the cache (MONGOPOOL_CACHE_DIR) and run at once: their logs and
# temporary directories are kept apart by the checkout's path.
CHECKOUT = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
MATRIX = ROOT / ".ci" / "matrix.toml"
CACHE = Path(os.environ.get("MONGOPOOL_CACHE_DIR", ROOT / ".cache")).resolve()
DEBIAN_MIRROR = os.environ.get("MONGOPOOL_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What the Debian root holds: the leg's Python, and Chromium for the browser test.
TRIXIE_PACKAGES = ["python3.13", "python3.13-venv", "ca-certificates", "chromium", "git"]

REPORT_VERSIONS = """\
import platform
from importlib.metadata import PackageNotFoundError, version
parts = [f"Python {platform.python_version()}"]
for name in ("Django", "pymongo", "django-mongodb-backend"):
    try:
        parts.append(f"{name} {version(name)}")
    except PackageNotFoundError:
        parts.append(f"{name} (not installed)")
print(", ".join(parts))
"""

# The oldest leg's pins must be the lower bounds of pyproject.toml, and be what pip installed.
CHECK_LOWER_BOUNDS = """\
import sys
from importlib.metadata import requires, version
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
pins = {}
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, pinned = line.split("==")
        pins[canonicalize_name(name)] = Version(pinned)
problems = []
for spec in requires("django-mongopool"):
    req = Requirement(spec)
    if req.marker is not None:
        continue  # an extra's dependency
    name = canonicalize_name(req.name)
    lower = [Version(s.version) for s in req.specifier if s.operator == ">="]
    if name not in pins or pins[name] not in lower:
        problems.append(f"{sys.argv[1]} must pin {req.name}=={lower[0] if lower else '?'} ({req})")
    elif Version(version(req.name)) != pins[name]:
        problems.append(f"{req.name}: installed {version(req.name)}, pinned {pins[name]}")
if problems:
    sys.exit("; ".join(problems))
"""


class LegError(Exception):
    """The leg could not run (as opposed to: it ran and tests failed)."""


@dataclass
class Leg:
    name: str
    python: str
    venv: str
    tier: str
    requirements: list[str] = field(default_factory=list)
    constraints: str | None = None
    also: list[str] = field(default_factory=list)  # markers run in this leg besides its tier


Tiers = dict[str, dict[str, Any]]


def load_matrix(path: Path = MATRIX) -> tuple[list[Leg], Tiers]:
    data = tomllib.loads(path.read_text())
    return [Leg(**leg) for leg in data["legs"]], data["tiers"]


def pytest_args(leg: Leg, tiers: Tiers) -> list[str]:
    """The whole suite, or a tier: the tests its markers select under tests/, and those of the
    leg's ``also`` markers (tests move between files and folders; their markers go with them)."""
    if leg.tier == "full":
        return []
    tier = tiers[leg.tier]
    markers = tier["markers"]
    if leg.also:
        markers = f"({markers}) or " + " or ".join(leg.also)
    return ["tests", "-m", markers]


# --- Where a leg's Python comes from ---------------------------------------------------------


def _runs(python: str, version: str) -> bool:
    try:
        out = subprocess.run(
            [python, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == version


def find_python(version: str) -> str | None:
    """A working interpreter of ``version`` ("3.13") installed on this machine, or None."""
    if os.environ.get("MONGOPOOL_MATRIX_CHROOT") == "1":
        return None
    explicit = os.environ.get("MONGOPOOL_PYTHON_" + version.replace(".", "_"))
    if explicit:
        if not _runs(explicit, version):
            raise LegError(
                f"MONGOPOOL_PYTHON_{version.replace('.', '_')}={explicit} is not a working Python {version}"
            )
        return explicit
    candidates = [shutil.which(f"python{version}")]
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        found = glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}"))
        candidates += sorted(
            found, key=lambda p: [int(x) for x in re.findall(r"\d+", p)], reverse=True
        )
    uv = shutil.which("uv")
    if uv:
        out = subprocess.run([uv, "python", "find", version], capture_output=True, text=True)
        candidates.append(out.stdout.strip() if out.returncode == 0 else None)
    for candidate in candidates:
        if candidate and _runs(candidate, version):
            return candidate
    return None


class Host:
    """Commands run on this machine."""

    def __init__(self, python: str, origin: str) -> None:
        self.python, self.origin = python, origin

    def run(self, cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, cwd=ROOT, text=True, **kwargs)


class DebianRoot:
    """Commands run inside a Debian 13 root (chroot, private mount namespace)."""

    def __init__(self, version: str) -> None:
        key = hashlib.sha256(" ".join(TRIXIE_PACKAGES).encode()).hexdigest()[:12]
        self.path = CACHE / f"debian-trixie-{key}"
        self.python = f"/usr/bin/python{version}"
        self.origin = f"Debian 13 root in {self.path}"

    _building = threading.Lock()  # two legs may need the root at once: one builds it

    def ensure(self) -> None:
        with self._building:
            self._ensure()

    def _ensure(self) -> None:
        if (self.path / ".complete").exists():
            return
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        if not shutil.which("debootstrap"):
            print("Installing Debian's debootstrap...", flush=True)
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for cmd in (
                ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "debootstrap"],
            ):
                if subprocess.run(sudo + cmd, env=env, stdout=subprocess.DEVNULL).returncode:
                    raise LegError(f"could not install debootstrap ({' '.join(cmd)} failed)")
        if self.path.exists():  # an interrupted build
            subprocess.run(sudo + ["rm", "-rf", "--one-file-system", str(self.path)], check=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        print(f"Building a Debian 13 root with Python 3.13 into {self.path} (once)...", flush=True)
        cmd = [
            "debootstrap",
            "--variant=minbase",
            "--include=" + ",".join(TRIXIE_PACKAGES),
            "trixie",
            str(self.path),
            DEBIAN_MIRROR,
        ]
        if subprocess.run(sudo + cmd, stdout=subprocess.DEVNULL).returncode:
            raise LegError(f"debootstrap failed: {' '.join(cmd)}")
        # Name resolution, and the host's CA bundle and pip configuration (a proxy's CA, an index).
        for name in ("etc/resolv.conf", "etc/pip.conf", "etc/ssl/certs/ca-certificates.crt"):
            if (Path("/") / name).is_file():
                subprocess.run(sudo + ["cp", "-L", f"/{name}", str(self.path / name)], check=True)
        subprocess.run(sudo + ["touch", str(self.path / ".complete")], check=True)

    def run(self, cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
        self.ensure()
        sudo = [] if os.geteuid() == 0 else ["sudo", "--preserve-env"]
        root = str(self.path)
        binds = [str(ROOT), str(CACHE), str(Path.home() / ".cache" / "pip")]
        # Local wheel directories pip is told to look in (PIP_FIND_LINKS), where they exist.
        binds += [p for p in os.environ.get("PIP_FIND_LINKS", "").split() if os.path.isdir(p)]
        mounts = [
            f"mount --rbind /dev {root}/dev",
            f"mount -t proc proc {root}/proc",
            f"mount -t sysfs sysfs {root}/sys",
        ]
        for path in dict.fromkeys(binds):
            Path(path).mkdir(parents=True, exist_ok=True)
            mounts.append(f"mkdir -p {shlex.quote(root + path)}")
            mounts.append(f"mount --bind {shlex.quote(path)} {shlex.quote(root + path)}")
        inner = f"cd {shlex.quote(str(ROOT))} && exec {shlex.join(cmd)}"
        script = " && ".join(mounts) + f" && exec chroot {root} /bin/sh -c {shlex.quote(inner)}"
        env = {**os.environ, "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
        return subprocess.run(
            sudo + ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            text=True,
            env=env,
            **kwargs,
        )


def runner_for(leg: Leg) -> Host | DebianRoot:
    found = find_python(leg.python)
    if found:
        return Host(found, found)
    if leg.python != "3.13":
        raise LegError(f"[{leg.name}] no Python {leg.python} on this machine (PATH, pyenv, uv)")
    return DebianRoot(leg.python)


SATISFIES = """\
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
sys.exit(any(not Requirement(r).specifier.contains(version(Requirement(r).name)) for r in sys.argv[1:]))
"""


def setup_venv_fits(leg: Leg) -> bool:
    """Whether the leg can use .venv as scripts/setup made it (the demo's venv): its Python is the
    leg's and its packages meet the leg's requirements."""
    python = str(ROOT / ".venv" / "bin" / "python")
    return (
        leg.venv == ".venv"
        and not leg.constraints
        and _runs(python, leg.python)
        and subprocess.run([python, "-c", SATISFIES, *leg.requirements]).returncode == 0
    )


# --- One leg ----------------------------------------------------------------------------------


def ensure_venv(leg: Leg, runner: Host | DebianRoot, out: TextIO) -> None:
    venv = ROOT / leg.venv
    inputs = [(ROOT / "pyproject.toml").read_text(), runner.origin, *leg.requirements]
    if leg.constraints:
        inputs.append((ROOT / leg.constraints).read_text())
    stamp = venv / (".installed-" + hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:16])
    if stamp.exists():
        return
    shutil.rmtree(venv, ignore_errors=True)  # another interpreter's, or a stale install
    print(f"[{leg.name}] creating {leg.venv} with {runner.origin}", file=out, flush=True)
    steps = [
        [runner.python, "-m", "venv", leg.venv],
        [f"{leg.venv}/bin/python", "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [
            f"{leg.venv}/bin/python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "-e",
            ".[test]",
            *leg.requirements,
        ]
        + (["-c", leg.constraints] if leg.constraints else []),
    ]
    for step in steps:
        if runner.run(step, stdout=out, stderr=subprocess.STDOUT).returncode:
            raise LegError(f"[{leg.name}] failed: {' '.join(step)}")
    stamp.touch()


def run_leg(leg: Leg, tiers: Tiers, extra: list[str], out: TextIO) -> tuple[bool, str]:
    if setup_venv_fits(leg):
        runner: Host | DebianRoot = Host(
            str(ROOT / ".venv" / "bin" / "python"), "scripts/setup's .venv"
        )
    else:
        runner = runner_for(leg)
        if leg.venv == ".venv":
            leg.venv = f".venv-{leg.name}"
        ensure_venv(leg, runner, out)
    python = f"{leg.venv}/bin/python"
    versions = runner.run([python, "-c", REPORT_VERSIONS], capture_output=True)
    if versions.returncode:
        raise LegError(f"[{leg.name}] cannot read its versions: {versions.stderr.strip()}")
    ran = versions.stdout.strip()
    if leg.constraints:
        checked = runner.run(
            [python, "-c", CHECK_LOWER_BOUNDS, leg.constraints], capture_output=True
        )
        if checked.returncode:
            raise LegError(f"[{leg.name}] {checked.stderr.strip()}")
    tier = "the whole suite" if leg.tier == "full" else f"the {leg.tier} tier"
    print(f"\n=== [{leg.name}] {ran} ({runner.origin}): {tier} ===", file=out, flush=True)
    # A temporary directory of its own: legs running at once must not clean up each other's.
    basetemp = f"/tmp/mongopool-matrix-{CHECKOUT}-{leg.name}"
    cmd = [python, "-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={basetemp}"]
    cmd += [*pytest_args(leg, tiers), *extra]
    return runner.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode == 0, ran


def timed_leg(
    leg: Leg, tiers: Tiers, extra: list[str], log: Path | None
) -> tuple[str, str, float, str]:
    """Run one leg (to ``log``, or to this terminal); its name, outcome, seconds and versions."""
    started = time.monotonic()
    out = log.open("w") if log else sys.stdout
    try:
        ok, ran = run_leg(leg, tiers, extra, out)
        outcome = "passed" if ok else "FAILED"
    except LegError as exc:
        ok, ran, outcome = False, str(exc), "COULD NOT RUN"
        print(ran, file=out, flush=True)
    finally:
        if log:
            out.close()
    if log:  # the whole leg at once, so that two legs' lines never interleave
        with log.open() as lines:
            sys.stdout.write(lines.read())
        sys.stdout.flush()
    return leg.name, outcome, time.monotonic() - started, ran


def main(argv: list[str]) -> int:
    legs, tiers = load_matrix()
    jobs = 2
    if "--jobs" in argv:
        at = argv.index("--jobs")
        jobs = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    wanted = [a for a in argv if not a.startswith("-")]
    extra = [a for a in argv if a.startswith("-")]
    unknown = set(wanted) - {leg.name for leg in legs}
    if unknown:
        sys.exit(
            f"unknown leg(s) {', '.join(sorted(unknown))}; known: {', '.join(leg.name for leg in legs)}"
        )
    chosen = [leg for leg in legs if not wanted or leg.name in wanted]
    started = time.monotonic()
    if jobs <= 1:
        results = [timed_leg(leg, tiers, extra, None) for leg in chosen]
    else:
        logs = CACHE / "matrix" / CHECKOUT
        logs.mkdir(parents=True, exist_ok=True)
        # The longest leg (the whole suite) starts first; the others share the second slot.
        chosen.sort(key=lambda leg: leg.tier != "full")
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [
                pool.submit(timed_leg, leg, tiers, extra, logs / f"{leg.name}.log")
                for leg in chosen
            ]
        results = [future.result() for future in futures]
    print(
        f"\n=== Test matrix ({time.monotonic() - started:.0f} s in all, {max(jobs, 1)} at a time) ==="
    )
    for name, outcome, seconds, ran in results:
        print(f"{name:<20} {outcome:<14} {seconds:6.0f} s  {ran}")
    return 0 if all(outcome == "passed" for _n, outcome, _s, _r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
