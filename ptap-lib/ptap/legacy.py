"""Running scripts written for the original ProcessTap (Python 2, 2010).

Such scripts mostly differ from today's by ``print`` statements,
``except E, e:`` and the like. :func:`translate` converts them to Python 3
with the standard library's ``lib2to3`` and its default fixers, which keep
every line where it was, so tracebacks still point at the script's lines.

``lib2to3`` is deprecated (it is still in Python 3.11); its deprecation
warning is silenced here. Importing it takes tens of milliseconds, so the
script loader imports this module only when a script fails to compile.
"""

import functools
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    from lib2to3 import refactor
    from lib2to3.pgen2.parse import ParseError
    from lib2to3.pgen2.tokenize import TokenError

__all__ = ["translate", "looks_like_python2"]


def translate(source, filename):
    """Return the Python 3 translation of the Python 2 *source*.

    *filename* is used in error messages. Source that is not valid Python 2
    either raises :exc:`SyntaxError`.
    """
    if not source.endswith("\n"):
        source += "\n"
    try:
        tree = _refactoring_tool().refactor_string(source, filename)
    except ParseError as error:
        line, column = error.context[1]
        raise SyntaxError(
            f"not valid Python 2 either: {error.msg}",
            (filename, line, column + 1, _line(source, line)),
        ) from None
    except (TokenError, IndentationError) as error:
        raise SyntaxError(f"not valid Python 2 either: {error}") from None
    return str(tree)


def looks_like_python2(source, filename):
    """Return True if *source* is Python 2: it compiles only after :func:`translate`."""
    try:
        compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError:
        pass
    else:
        return False
    try:
        compile(translate(source, filename), filename, "exec", dont_inherit=True)
    except SyntaxError:
        return False
    return True


@functools.cache
def _refactoring_tool():
    """Return a RefactoringTool with lib2to3's default fixers, made once."""
    fixers = refactor.get_fixers_from_package("lib2to3.fixes")
    return refactor.RefactoringTool(fixers)


def _line(source, number):
    """Return line *number* (counting from 1) of *source*, or None."""
    lines = source.splitlines(keepends=True)
    if 1 <= number <= len(lines):
        return lines[number - 1]
    return None
