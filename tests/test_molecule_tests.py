"""Each Molecule test file says at the end of its docstring whether it changes the hosts, so that a
reader knows which tests are steps of the scenario (their order matters) and which only look."""

import ast
import re

import pytest

from helpers import REPO

TEST_FILES = sorted((REPO / "molecule").glob("*/tests/test_*.py"))
# What changes a host from a test: a playbook run (lm_testlib's converge, playbook, killed_converge,
# backup), a unit started or stopped by hand, a forced rotation.
CHANGES = re.compile(r"\b(converge|playbook|killed_converge|backup)\(|systemctl (start|stop|restart|kill)\b|--force\b")


def last_paragraph(path):
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))).split("\n\n")[-1]


def test_the_scenarios_test_files_are_found():
    assert len(TEST_FILES) > 20


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.relative_to(REPO / "molecule").as_posix())
def test_a_test_file_says_whether_it_changes_the_hosts(path):
    said = last_paragraph(path)
    assert re.match(r"(Changes the hosts?|Reads the hosts? only|Reads nothing of the host)\b", said), \
        f"the docstring's last paragraph says neither 'Changes the host…' nor 'Reads the host… only': {said!r}"
    if CHANGES.search(path.read_text(encoding="utf-8")) and not said.startswith("Changes"):
        assert "changes nothing (tested)" in said, "it runs a playbook or starts a unit: it changes the host"
