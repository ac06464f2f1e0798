"""Shared by every scenario's testinfra suite: the helpers and fixtures of resources/tests
(pytest loads this file for every test below molecule/)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "resources", "tests"))

from lm_testlib import *  # noqa: E402,F401,F403  (fixtures and helpers shared by all scenarios)

