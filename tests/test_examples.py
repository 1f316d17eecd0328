"""The scripts in examples/ do what their comments say, on real programs."""

import re

from conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"


def test_modules_lists_the_libraries_ls_loads(trace):
    result = trace(EXAMPLES / "modules.ptap", "/bin/ls", "/", options=["-q"])
    assert result.returncode == 0, str(result)
    assert "usr\n" in result.stdout, str(result)
    assert re.search(r"^load  libc\.so\.6 +at 0x[0-9a-f]+$", result.stdout, re.M), str(result)


def test_legacy_exit_runs_translated(trace):
    result = trace(EXAMPLES / "legacy_exit.ptap", "/bin/true")
    assert result.returncode == 0, str(result)
    assert re.search(r"^\S*/true loaded \d+ modules and exited with 0$", result.stdout, re.M), str(result)
    assert "Python 2 script translated to Python 3" in result.stderr, str(result)


def test_faults_makes_one_file_missing(trace, tmp_path):
    (tmp_path / "present.txt").write_text("here\n")
    (tmp_path / "missing.txt").write_text("on disk, yet unreachable\n")
    result = trace(EXAMPLES / "faults.ptap", "/bin/cat", "present.txt", "missing.txt", options=["-q"], cwd=tmp_path)
    assert result.returncode == 1, str(result)
    assert "here\n" in result.stdout and "unreachable" not in result.stdout, str(result)
    assert "cat: missing.txt: No such file or directory" in result.stderr, str(result)
    assert "openat('present.txt') -> fd 3" in result.stdout, str(result)
    assert "openat('missing.txt') -> ENOENT" in result.stdout, str(result)
