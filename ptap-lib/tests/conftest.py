"""Shared fixtures for the ptap tests."""

import pytest

from ptap import prototypes, script
from ptap.probes import Registry, use_registry


@pytest.fixture
def registry():
    """A fresh registry that the decorators add to for the test's duration."""
    with use_registry(Registry()) as fresh:
        yield fresh


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    """A cache directory shared by the whole session, so each header is prepared once."""
    return tmp_path_factory.mktemp("ptap-cache")


@pytest.fixture(autouse=True)
def isolated_prototypes(session_cache, monkeypatch):
    """Keep every test away from ~/.cache and from the prototypes of other tests.

    A test that needs a cache of its own sets PTAP_CACHE_DIR again; one
    that needs -I directories sets ptap.script._include_dirs.
    """
    monkeypatch.setenv("PTAP_CACHE_DIR", str(session_cache))
    monkeypatch.setattr(script, "_include_dirs", ())
    prototypes.reset()
    yield
    prototypes.reset()
