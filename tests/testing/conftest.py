"""The sample plugin families installed for the tests that need them (``tests/plugins``)."""

from __future__ import annotations

import pytest

from tests.plugins import PACKAGES, activate, deactivate, install


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory):
    """``sample-shift`` and ``broken-shift`` installed (as pip would, in a site directory on ``sys.path``) and
    found by hybridc through their entry points; uninstalled at the end of the session."""
    site = install(tmp_path_factory.mktemp("plugins") / "site", *PACKAGES.values())
    activate(site)
    yield site
    deactivate(site)
