"""Shared by every scenario's testinfra suite: the helpers and fixtures of resources/tests
(pytest loads this file for every test below molecule/)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "resources", "tests"))

from lm_testlib import *  # noqa: E402,F401,F403  (fixtures and helpers shared by all scenarios)


def pytest_configure(config):
    config.addinivalue_line("markers", "last: leaves the hosts in a state the other tests must not see; runs at the end")


def pytest_collection_modifyitems(items):
    # A stable sort: the tests marked `last` go to the end, in their own order; the others keep theirs.
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)
