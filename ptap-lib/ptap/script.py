"""Loading a user's script: compile it, run its top level, collect its probes.

:func:`run_script` is what the native runtime calls once, before the target
runs. The script's top level runs like ``python SCRIPT``: its ``__name__`` is
``"__main__"``, its directory is first on ``sys.path``, and the names of the
``ptap`` package are in its globals without an import, along with ``exe``
and ``argv``, the target's path and arguments. Its decorators fill a fresh
:class:`~ptap.probes.Registry`, whose probes :func:`run_script` returns.

A script that fails to compile or raises at its top level gets a traceback
on ``sys.stderr`` that shows the script's own lines and none of ptap's, and
:exc:`~ptap.errors.ScriptError` is raised. A script written for the original
ProcessTap in Python 2 is translated (see :mod:`ptap.legacy`) with a warning.
"""

import builtins
import os
import sys

import ptap

from . import prototypes
from .errors import ScriptError
from .probes import Registry, use_registry

__all__ = ["run_script", "include_dirs"]

_PTAP_DIR = os.path.dirname(os.path.abspath(__file__))

_include_dirs = ()


def include_dirs():
    """Return the header directories (``-I``) given to the last :func:`run_script`."""
    return _include_dirs


def _print_warning(message):
    """Print a warning to ``sys.stderr`` in the style of the banner."""
    print(f"[!] {message}", file=sys.stderr)


def run_script(path, *, exe, argv, include_dirs=(), warn=_print_warning):
    """Run the script at *path* and return the probes it declared, in order.

    *exe* and *argv* are the target's path and arguments, which the script
    sees as ``exe`` and ``argv``. *include_dirs* are searched for headers
    before the system include path by ``include()``; the prototypes of
    an earlier run are forgotten. *warn* is called with a one-line
    message for anything the user should know that is not an error.

    Raises :exc:`~ptap.errors.ScriptError`, after printing a traceback to
    ``sys.stderr``, if the script cannot be read or compiled, or raises
    (including :exc:`SystemExit`) at its top level.
    """
    global _include_dirs
    _include_dirs = tuple(include_dirs)
    prototypes.reset()
    try:
        code = _compile_script(path, warn)
        namespace = _script_globals(path, exe, argv)
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        with use_registry(Registry()) as registry:
            exec(code, namespace)
    except (Exception, SystemExit) as error:
        _print_traceback(error)
        raise ScriptError(path, f"{type(error).__name__} while loading the script") from error
    return registry.probes


def _compile_script(path, warn):
    """Read and compile the script, translating it from Python 2 if need be."""
    with open(path, encoding="utf-8-sig") as file:
        source = file.read()
    try:
        code = compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as error:
        original = error
    else:
        _sources[path] = source
        return code

    from . import legacy  # Slow to import, and rarely needed.

    try:
        translation = legacy.translate(source, path)
        code = compile(translation, path, "exec", dont_inherit=True)
    except SyntaxError:
        raise original from None
    warn(f"{path}: Python 2 script translated to Python 3")
    _sources[path] = translation
    _remember_source(path, translation)  # lib2to3 has imported linecache anyway.
    return code


#: The source of each script run, by path, for tracebacks of its top level.
_sources = {}


def _remember_source(path, source):
    """Make tracebacks show *source* for *path*, whatever the file holds later.

    For a translated script, whose file holds its Python 2 text.
    """
    import linecache

    lines = source.splitlines(keepends=True)
    linecache.cache[path] = (len(source), None, lines, path)


def _script_globals(path, exe, argv):
    """Return the globals the script's top level runs in."""
    namespace = {name: getattr(ptap, name) for name in ptap.__all__}
    namespace["exe"] = exe
    namespace["argv"] = list(argv)
    namespace["__name__"] = "__main__"
    namespace["__file__"] = path
    namespace["__builtins__"] = builtins
    return namespace


def _print_traceback(error):
    """Print *error*'s traceback to ``sys.stderr`` without ptap's own frames.

    The traceback shows the script's lines as they were compiled. Only
    now are they given to :mod:`linecache`, which imports ``tokenize`` and
    ``re``: a script that runs without error should not pay for them.
    """
    import traceback

    for path, source in _sources.items():
        _remember_source(path, source)
    report = traceback.TracebackException.from_exception(error)
    _drop_ptap_frames(report, seen=set())
    sys.stderr.write("".join(report.format()))
    sys.stderr.flush()


def _drop_ptap_frames(report, seen):
    """Remove ptap's frames from *report* and the exceptions chained to it."""
    import traceback

    if report is None or id(report) in seen:
        return
    seen.add(id(report))
    frames = [frame for frame in report.stack if not _is_ptap_file(frame.filename)]
    report.stack = traceback.StackSummary.from_list(frames)
    _drop_ptap_frames(report.__cause__, seen)
    _drop_ptap_frames(report.__context__, seen)
    for member in report.exceptions or ():
        _drop_ptap_frames(member, seen)


def _is_ptap_file(filename):
    """Whether *filename* is one of the ptap package's own modules."""
    return os.path.abspath(filename).startswith(_PTAP_DIR + os.sep)
