"""runtime/src/deferred_site.py, the tracer's replacement for CPython running
``site`` at start-up, run by /usr/bin/python3.11 as the tracer runs it
(isolated, without ``site``) on a site-packages directory made for the
test, and compared with what ``site`` itself does with that directory."""

import json
import subprocess
import textwrap

import pytest

from conftest import REPO_ROOT

DEFERRED_SITE = REPO_ROOT / "runtime" / "src" / "deferred_site.py"
PYTHON = "/usr/bin/python3.11"

#: Made the sole prefix of ``site``, so its site-packages is ours alone.
SETUP = """\
import json, site, sys
site.PREFIXES = [{prefix!r}]
"""

#: A .pth file with a path line and an import line that installs an import
#: hook providing ``hooked``, first on sys.meta_path (where setuptools puts
#: its distutils hook): only the hook can find it, so importing it works
#: only if the line ran first and the hook was asked.
PTH = """\
# a comment
extra
import sys; sys.pth_runs = getattr(sys, "pth_runs", 0) + 1; sys.meta_path.insert(0, __import__("hook").Finder())
"""

HOOK = """\
import importlib.machinery, importlib.util, types

class Finder:
    def find_spec(self, name, path=None, target=None):
        if name == "hooked":
            return importlib.util.spec_from_loader(name, Loader())

class Loader:
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        module.made_by = "hook"
"""


@pytest.fixture
def prefix(tmp_path):
    packages = tmp_path / "prefix" / "lib" / "python3" / "dist-packages"
    (packages / "extra").mkdir(parents=True)
    (packages / "a.pth").write_text(PTH)
    (packages / "hook.py").write_text(HOOK)
    return str(tmp_path / "prefix")


def run(tmp_path, code):
    """Run *code* in ``python3.11 -I -S`` (as the tracer starts its Python);
    return what it printed as JSON."""
    driver = tmp_path / "driver.py"
    driver.write_text(code)
    done = subprocess.run([PYTHON, "-I", "-S", str(driver)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    return json.loads(done.stdout)


def test_paths_now_and_import_lines_before_the_scripts_first_import(tmp_path, prefix):
    reference = run(tmp_path, SETUP.format(prefix=prefix) + textwrap.dedent("""\
        site.main()
        import hooked
        print(json.dumps({"path": sys.path, "runs": sys.pth_runs, "hooked": hooked.made_by,
                          "sitecustomize": "sitecustomize" in sys.modules}))
    """))
    assert reference["runs"] == 1 and reference["hooked"] == "hook"
    assert prefix + "/lib/python3/dist-packages/extra" in reference["path"]

    state = run(tmp_path, SETUP.format(prefix=prefix) + textwrap.dedent(f"""\
        import importlib.util
        spec = importlib.util.spec_from_file_location("_ptap_deferred_site", {str(DEFERRED_SITE)!r})
        deferred = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(deferred)
        deferred.install()
        state = {{"path": list(sys.path), "runs_at_start": getattr(sys, "pth_runs", 0),
                  "sitecustomize_at_start": "sitecustomize" in sys.modules,
                  "exit_at_start": callable(getattr(__builtins__, "exit", None))}}
        # An import made by ptap (here: code whose globals say it is
        # ptap.probe) of a module not imported yet leaves them held back.
        exec("import colorsys", {{"__name__": "ptap.probe"}})
        state["runs_after_ptap_import"] = getattr(sys, "pth_runs", 0)
        # The script's own import: its module is __main__.
        import hooked
        state.update(runs=sys.pth_runs, hooked=hooked.made_by,
                     sitecustomize="sitecustomize" in sys.modules,
                     deferred_left=[f for f in sys.meta_path if f is deferred._DeferredSite])
        import wave
        state["runs_at_end"] = sys.pth_runs
        print(json.dumps(state))
    """))
    assert state["path"] == reference["path"]
    assert state["runs_at_start"] == 0
    assert state["sitecustomize_at_start"] is False
    assert state["exit_at_start"] is True
    assert state["runs_after_ptap_import"] == 0
    assert state["runs"] == 1 and state["hooked"] == "hook"
    assert state["sitecustomize"] == reference["sitecustomize"]
    assert state["deferred_left"] == []
    assert state["runs_at_end"] == 1
