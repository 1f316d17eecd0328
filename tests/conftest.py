"""Fixtures of ProcessTap's end-to-end tests.

Every test runs the real tracer on real programs: the small C programs of
``tests/targets`` and a few system commands (``/bin/ls``, ``/bin/echo``,
``/usr/bin/python3``).

Environment:

- ``PTAP_PROCESSTAP``: the ``processtap`` binary to test (default:
  ``<repo>/target/release/processtap``).
- ``PTAP_TARGETS_DIR``: a directory holding the built C targets (default:
  ``<repo>/build/targets``, built there with CMake once per session when
  missing or out of date; a top-level build's ``<repo>/build/tests/targets``
  is used when it is complete and ``<repo>/build/targets`` does not exist).
- ``PTAP_DYNAMORIO_BUILD``: the DynamoRIO build that ``libptap.so`` runs with
  under a stock ``drrun`` (default: ``dynamorio`` beside the processtap
  binary, the link to the ``dynamorio-sys`` crate's build);
  ``PTAP_DYNAMORIO_TOOLS``: DynamoRIO's ``tools/`` source that drrun is built
  from (see ``scripts/build-drrun``, which the ``drrun`` fixture runs).
"""

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = Path(__file__).resolve().parent
TARGETS_SOURCE_DIR = TESTS_DIR / "targets"

#: The C targets CMakeLists.txt builds; tests refer to them by these names.
TARGET_NAMES = ("hello", "exit_with", "segv", "threads", "close_stdio", "dlopen_lib")

#: What ``hello`` prints, natively.
HELLO_OUTPUT = "hello, world\nsecond line\nthird line: 42\n"

#: The Python interpreter used as a target. It must be the ELF executable:
#: on some machines ``python3`` on PATH is a shell shim.
PYTHON = "/usr/bin/python3"


@dataclass
class TraceResult:
    """What one run of processtap gave.

    ``str()`` gives the command line, exit status and both outputs, for
    assertion messages: ``assert ..., str(result)``.
    """

    #: The command line that was run.
    args: list
    #: The script that was traced with.
    script: Path
    returncode: int
    stdout: str
    stderr: str

    def __str__(self):
        return (
            f"$ {' '.join(map(str, self.args))}\n"
            f"exit status {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}"
            f"--- stderr ---\n{self.stderr}"
        )


def run_command(args, *, cwd=None, env=None, timeout=60):
    """Run *args* in a new session; on timeout kill its process group and fail."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    process = subprocess.Popen(
        [str(arg) for arg in args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=full_env,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout, stderr = process.communicate()
        pytest.fail(
            f"timed out after {timeout} s (hang?): {' '.join(map(str, args))}\n"
            f"--- stdout ---\n{stdout.decode(errors='replace')}"
            f"--- stderr ---\n{stderr.decode(errors='replace')}"
        )
    return (
        process.returncode,
        stdout.decode("utf-8", errors="replace"),
        stderr.decode("utf-8", errors="replace"),
    )


# ---------------------------------------------------------------------------
# The binary and the targets


@pytest.fixture(scope="session")
def processtap():
    """Path of the processtap binary under test."""
    path = Path(os.path.abspath(os.environ.get("PTAP_PROCESSTAP") or REPO_ROOT / "target" / "release" / "processtap"))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"processtap binary not found at {path} (build it, or set PTAP_PROCESSTAP)")
    return path


def _complete(directory):
    return all((directory / name).is_file() for name in TARGET_NAMES)


def _build_targets(build_dir):
    """Configure (once) and build tests/targets into *build_dir* with CMake."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.fail("cmake is needed to build the test targets (or set PTAP_TARGETS_DIR)")
    steps = []
    if not (build_dir / "CMakeCache.txt").is_file():
        steps.append([cmake, "-S", TARGETS_SOURCE_DIR, "-B", build_dir])
    steps.append([cmake, "--build", build_dir])
    for step in steps:
        completed = subprocess.run(
            [str(arg) for arg in step], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if completed.returncode != 0:
            pytest.fail(
                f"building the test targets failed: {' '.join(map(str, step))}\n"
                + completed.stdout.decode(errors="replace")
            )


@pytest.fixture(scope="session")
def targets_dir():
    """Directory of the built C targets (built with CMake if need be)."""
    override = os.environ.get("PTAP_TARGETS_DIR")
    if override:
        directory = Path(override).resolve()
        if not _complete(directory):
            missing = [n for n in TARGET_NAMES if not (directory / n).is_file()]
            pytest.fail(f"PTAP_TARGETS_DIR={directory} lacks {', '.join(missing)}")
        return directory
    default = REPO_ROOT / "build" / "targets"
    from_top_level = REPO_ROOT / "build" / "tests" / "targets"
    if not default.exists() and _complete(from_top_level):
        return from_top_level
    # Our own build directory: (re)build, which is quick when up to date.
    _build_targets(default)
    if not _complete(default):
        pytest.fail(f"building the test targets left {default} incomplete")
    return default


@pytest.fixture(scope="session")
def target(targets_dir):
    """``target("hello")``: the path of a built C target, as a str."""

    def path_of(name):
        assert name in TARGET_NAMES, f"unknown test target {name!r}"
        return str(targets_dir / name)

    return path_of


# ---------------------------------------------------------------------------
# Running


@pytest.fixture
def trace(processtap, tmp_path):
    """``trace(script, *command, options=(), cwd=None, timeout=60, env=None)``.

    Runs ``processtap [options] SCRIPT -- COMMAND...`` and returns a
    :class:`TraceResult`. *script* is the script's text when a ``str``
    (written to a new file under ``tmp_path``), or the path of an existing
    script when a :class:`pathlib.Path`. *env* adds to the environment.
    """
    counter = iter(range(1, 1_000_000))

    def run(script, *command, options=(), cwd=None, timeout=60, env=None):
        if isinstance(script, os.PathLike):
            script_path = Path(script)
        else:
            script_path = tmp_path / f"script{next(counter)}.ptap"
            script_path.write_text(script)
        args = [processtap, *options, script_path, "--", *command]
        returncode, stdout, stderr = run_command(args, cwd=cwd, env=env, timeout=timeout)
        return TraceResult(args, script_path, returncode, stdout, stderr)

    return run


@pytest.fixture
def run_processtap(processtap):
    """``run_processtap(*args, cwd=None, env=None, timeout=60)``: processtap with raw arguments.

    For command lines that :func:`trace` cannot express (no script, bad
    options, ...). Returns a :class:`TraceResult` whose script is None.
    """

    def run(*args, cwd=None, env=None, timeout=60):
        full = [processtap, *args]
        returncode, stdout, stderr = run_command(full, cwd=cwd, env=env, timeout=timeout)
        return TraceResult(full, None, returncode, stdout, stderr)

    return run


@pytest.fixture(scope="session")
def run_native():
    """``run_native(*command, cwd=None, env=None, timeout=60)``: run without tracing.

    Returns a :class:`subprocess.CompletedProcess` with text output. Its
    returncode is normalised as a shell shows it: 128+N for death by
    signal N.
    """

    def run(*command, cwd=None, env=None, timeout=60):
        returncode, stdout, stderr = run_command(command, cwd=cwd, env=env, timeout=timeout)
        if returncode < 0:
            returncode = 128 - returncode
        return subprocess.CompletedProcess(
            [str(c) for c in command], returncode, stdout, stderr
        )

    return run


def script_lines(text, prefix):
    """The lines of *text* that start with *prefix*, with the prefix removed."""
    return [line[len(prefix):] for line in text.splitlines() if line.startswith(prefix)]



# ---------------------------------------------------------------------------
# A stock drrun


@dataclass
class Drrun:
    """DynamoRIO's own ``drrun``, built from DynamoRIO's sources."""

    #: The drrun executable (``build/drrun/drrun``).
    path: Path
    #: The DynamoRIO build it runs, given as ``-root``.
    root: Path
    #: The ``libptap.so`` given to ``-c``.
    client: Path


@pytest.fixture(scope="session")
def drrun(processtap):
    """A stock drrun built by ``scripts/build-drrun`` (once per session, when stale).

    Skips the tests that use it, saying what is missing, when DynamoRIO's
    tools/ source, the DynamoRIO build or ``libptap.so`` cannot be found, or
    drrun does not compile.
    """
    client = processtap.parent / "libptap.so"
    if not client.is_file():
        pytest.skip(f"drrun tests: no libptap.so beside {processtap}")
    root = Path(os.environ.get("PTAP_DYNAMORIO_BUILD") or processtap.parent / "dynamorio").resolve()
    completed = subprocess.run(
        [str(REPO_ROOT / "scripts" / "build-drrun"), str(root)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    if completed.returncode != 0:
        reason = completed.stderr.strip() or f"scripts/build-drrun exited with {completed.returncode}"
        pytest.skip(f"drrun tests: cannot build a stock drrun: {reason[:2000]}")
    path = Path(completed.stdout.strip().splitlines()[-1])
    return Drrun(path=path, root=root, client=client)


# ---------------------------------------------------------------------------
# The drrun form beside processtap

#: The two ways to start a trace: our launcher, and DynamoRIO's stock drrun.
LAUNCHERS = ["processtap", "drrun"]


@pytest.fixture
def no_dynamorio_variables(monkeypatch):
    """The tests' own environment holds no DynamoRIO variable to start with
    (for tests that compare the target's environment with the untraced one)."""
    for name in list(os.environ):
        if name.startswith("DYNAMORIO_"):
            monkeypatch.delenv(name)


@pytest.fixture
def configdir(tmp_path):
    """The ``DYNAMORIO_CONFIGDIR`` of a drrun run (drrun writes into its ``.dynamorio``)."""
    directory = tmp_path / "dynamorio-config"
    directory.mkdir()
    return directory


def config_files(directory):
    """The ``*.1config64`` files under *directory*, hidden folders included."""
    return sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(directory)
        for name in names
        if name.endswith(".1config64")
    )


@pytest.fixture
def under_drrun(drrun, configdir, tmp_path):
    """``under_drrun(script, *command, options=(), cwd=None, timeout=60, env=None)``.

    Runs ``drrun -root ROOT -c libptap.so [options] SCRIPT -- COMMAND...``
    as :func:`trace` runs processtap (*script* is the script's text, or a
    :class:`pathlib.Path` to use as is), and returns a TraceResult.
    """
    counter = iter(range(1, 1_000_000))

    def run(script, *command, options=(), cwd=None, timeout=60, env=None):
        if isinstance(script, os.PathLike):
            script_path = Path(script)
        else:
            script_path = tmp_path / f"drrun-script{next(counter)}.ptap"
            script_path.write_text(script)
        args = [drrun.path, "-root", drrun.root, "-c", drrun.client, *options, script_path, "--", *command]
        full_env = {"DYNAMORIO_CONFIGDIR": str(configdir), **(env or {})}
        returncode, stdout, stderr = run_command(args, cwd=cwd, env=full_env, timeout=timeout)
        return TraceResult(args, script_path, returncode, stdout, stderr)

    return run


@pytest.fixture(params=LAUNCHERS)
def tracer(request):
    """``tracer(script, *command, options=(), cwd=None, timeout=60, env=None)``
    under processtap or under drrun (the test's id says which); the name is
    in ``tracer.launcher``."""
    run = request.getfixturevalue("trace" if request.param == "processtap" else "under_drrun")

    def traced(*args, **kwargs):
        return run(*args, **kwargs)

    traced.launcher = request.param
    return traced
