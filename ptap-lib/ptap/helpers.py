"""Helpers for scripts: symbols and modules of the traced program.

They ask the native runtime (the private module ``_ptap``), so they work
inside a traced program only; elsewhere they raise :exc:`RuntimeError`.
"""

__all__ = ["symbol", "module"]


def _native():
    """The native module, or a clear error outside a traced program."""
    try:
        import _ptap
    except ImportError:
        raise RuntimeError("this helper works only inside a program traced by processtap") from None
    return _ptap


def symbol(name_or_address):
    """Look a function or data object up in the loaded modules.

    ``symbol("malloc")`` is the set of addresses where a function or data
    object of that name starts in the modules loaded now; when none defines
    it, a :class:`~ptap.addresses.PendingSymbol` that fills as modules that
    define it load. ``symbol(0x7f...)`` is the list of names of the
    function starting at that address.
    """
    if isinstance(name_or_address, str):
        found = set(_native().addresses_of(name_or_address))
        if found:
            return found
        from .addresses import pending_symbol

        return pending_symbol(name_or_address, whole=False)
    if isinstance(name_or_address, int) and not isinstance(name_or_address, bool):
        return _native().names_at(name_or_address)
    raise TypeError(f"symbol() takes a name or an address, not {type(name_or_address).__name__}")


def module(address):
    """The name of the module holding *address*, or None."""
    return _native().module_of(address)
