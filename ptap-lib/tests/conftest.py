"""Shared fixtures for the ptap tests."""

import pytest

from ptap.probes import Registry, use_registry


@pytest.fixture
def registry():
    """A fresh registry that the decorators add to for the test's duration."""
    with use_registry(Registry()) as fresh:
        yield fresh
