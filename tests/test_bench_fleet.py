"""The fleet benchmark's table (bench/benchlib/fleet.py): ratios to one host and the projection to
a fleet of 50 from a least-squares line."""

import sys

from helpers import REPO

sys.path.insert(0, str(REPO / "bench"))

from benchlib import fleet  # noqa: E402


def row(hosts, mode, code_only):
    timed = {"seconds": 10.0, "controller_cpu_s": 5.0}
    return {"hosts": hosts, "mode": mode, "fresh": timed, "noop": timed,
            "code_only": {"seconds": code_only, "controller_cpu_s": 4.0}}


def test_the_table_gives_each_size_against_one_host_and_a_projection():
    text = fleet.table([row(1, "rolling", 40.0), row(3, "rolling", 60.0), row(6, "rolling", 90.0)])
    lines = text.splitlines()
    assert lines[2].endswith("| 40.0 | 1.00× |") and lines[4].endswith("| 15.0 | 2.25× |"), text
    # Exactly on the line t = 30 + 10 n: 50 hosts take 530 s.
    assert "t ≈ 30 s + 10.0 s × hosts" in text and "50 hosts ≈ 530 s" in text, text


def test_one_size_alone_gives_no_projection():
    assert fleet.projection([row(1, "parallel", 40.0)], "parallel") is None
    assert fleet.table([]) == ""
