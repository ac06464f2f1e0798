"""Shared helpers for the testinfra suites (HTTP through nginx, run inside the container)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "resources", "tests"))

from lm_testlib import *  # noqa: E402,F401,F403  (fixtures and helpers shared by all scenarios)
