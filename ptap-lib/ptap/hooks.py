"""What the ptap package itself does at a traced process's fork and exit.

The native runtime calls :func:`run_fork_hooks` in a forked child, before
its first event, and :func:`run_exit_hooks` at the process's exit, after
its ``process_exit`` handlers. Parts of the package that keep state per
process register here: :mod:`ptap.aggregations` starts a child's
aggregations empty and prints what the script did not; :mod:`ptap.tracing`
does the same for ``-c``'s table. A module registers when it is imported,
so a script that uses neither pays for neither.
"""

__all__ = ["at_fork", "at_exit", "run_fork_hooks", "run_exit_hooks"]

_fork_hooks = []
_exit_hooks = []


def at_fork(hook):
    """Call *hook()* in every forked child. Returns *hook*, as a decorator."""
    _fork_hooks.append(hook)
    return hook


def at_exit(hook):
    """Call *hook()* at the process's exit, in the order registered. Returns *hook*."""
    _exit_hooks.append(hook)
    return hook


def run_fork_hooks():
    """In a forked child: run every fork hook."""
    _run(_fork_hooks)


def run_exit_hooks():
    """At the process's exit: run every exit hook."""
    _run(_exit_hooks)


def _run(hooks):
    """Run each hook; one that fails is reported and the others still run."""
    for hook in hooks:
        try:
            hook()
        except Exception:  # noqa: BLE001 - reported, and the rest must run.
            import traceback

            traceback.print_exc()
