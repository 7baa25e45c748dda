"""Fixtures of the end-to-end tests that drive the dashboard in a browser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dashboard_support import Browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One headless Chromium per test module."""
    chromium = Browser(tmp_path_factory.mktemp("downloads"))
    yield chromium
    chromium.quit()
