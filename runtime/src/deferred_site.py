"""What ``site`` does for the tracer's Python, in two steps.

CPython starts without ``site`` (``site_import = 0`` in interpreter.rs), and
then :func:`install` runs ``site.main()`` with two of its steps held back:
the ``import`` lines of ``.pth`` files and ``sitecustomize``. Everything
else happens now, as ``site`` would do it: ``sys.path`` gets the
site-packages directories and the path lines of their ``.pth`` files (the
same list, in the same order), and ``exit``, ``quit``, ``help`` ... are
in builtins.

The held-back steps are what ``site`` costs beyond the modules ``ptap``
imports anyway (``os``): Debian's ``distutils-precedence.pth`` imports
``_distutils_hack``, ``sitecustomize`` imports apport's exception hook,
other ``.pth`` files import what they like. Every process the target forks
or execs paid them; holding them back took the Python stage of a traced
/bin/true from 13.1 to 11.7 ms (medians of 30 interleaved runs; 9.2 to
7.9 ms in the fastest), with ~2.5 ms of import lines on this machine. They
run, by a second and complete ``site.main()``, just before the first
import made for the script rather than for ``ptap`` (by the script's top
level or a handler, or by a module they call; an ``import`` of a module
already imported makes no lookup). So everything a script imports is
found as if ``site`` had run at start-up: ``.pth`` files that install
import hooks (``distutils`` taken from setuptools, editable installs)
have installed them first. ``ptap``'s own imports never depend on what
``.pth`` lines do.

What does differ: until then ``sys.excepthook`` is Python's own, not
apport's; ``sys.flags.no_site`` is 1; and a ``.pth`` import line that
appends to ``sys.path`` puts its entry after the path lines of every
``.pth`` file rather than after those read before it.
"""

import sys

import site

__all__ = ["install"]


def install():
    """Add site's paths now and hold back the ``.pth`` imports and
    ``sitecustomize`` until code outside ``ptap`` first imports."""
    customize = site.execsitecustomize
    # site.main() looks both names up in the site module's globals when it
    # calls them, so these shadow the builtin exec (used only for .pth
    # import lines) and sitecustomize for this one call.
    site.exec = _hold_back
    site.execsitecustomize = _hold_back
    try:
        site.main()
    finally:
        del site.exec
        site.execsitecustomize = customize
    sys.meta_path.insert(0, _DeferredSite)


def _hold_back(*_args, **_kwargs):
    """Stand-in for ``exec`` and ``execsitecustomize`` during :func:`install`."""


class _DeferredSite:
    """A finder first on ``sys.meta_path`` that finds nothing itself: at
    the first lookup for code outside ``ptap`` it runs the rest of site,
    leaves ``sys.meta_path``, and answers as the finders then there do."""

    running = False

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if cls.running or _asked_by_ptap():
            return None
        cls.running = True
        try:
            # Paths are already known to site, so this adds none twice; it
            # runs the .pth import lines and sitecustomize.
            site.main()
        finally:
            sys.meta_path.remove(cls)
        # The import system goes on from the finder after this one, so the
        # finders site just put in front must be asked here.
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                return spec
        return None


def _asked_by_ptap():
    """Whether the import being looked up is made on behalf of ``ptap``.

    The frames above the lookup are walked up: the import machinery's own
    are skipped, and so are those of other modules (``dataclasses``
    importing ``inspect`` for ``ptap``, ``json`` importing its parts for
    the script), which run for whoever called them. The first frame of
    ``ptap`` (or of this module) says yes; the first frame of the script
    says no: its top level and its handlers run in globals named
    ``__main__``. With neither, the import comes from the tracer's Rust
    code (``py.import``), which is ptap's too.
    """
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module == "__main__":
            return False
        if module == "ptap" or module.startswith("ptap.") or module == __name__:
            return True
        frame = frame.f_back
    return True
