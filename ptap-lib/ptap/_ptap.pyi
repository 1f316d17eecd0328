"""Type stubs for ``_ptap``, the private native module.

The native module is provided by libptap.so (the Rust runtime) inside the
traced program; it cannot be imported anywhere else.
"""
