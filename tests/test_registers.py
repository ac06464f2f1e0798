"""Every result a task registers is read somewhere (a register nobody reads is a hand-off that
went missing, or one that should go)."""

import re

import pytest

from helpers import ROLE

TEXTS = {path: path.read_text(encoding="utf-8")
         for path in sorted(ROLE.glob("tasks/**/*.yml")) + sorted(ROLE.glob("templates/*.j2")) + [ROLE / "vars" / "main.yml"]}
REGISTERED = sorted({name for text in TEXTS.values() for name in re.findall(r"^\s*register: (\w+)$", text, re.M)})


def test_the_reader_finds_the_registers():
    assert "__lernmanager_compile" in REGISTERED and len(REGISTERED) > 20


@pytest.mark.parametrize("name", REGISTERED)
def test_every_registered_result_is_read(name):
    reads = sum(len(re.findall(rf"\b{name}\b", text)) - len(re.findall(rf"register: {name}$", text, re.M))
                for text in TEXTS.values())
    assert reads > 0, f"{name} is registered but never read"


def test_no_register_hides_a_variable_of_the_role():
    """A registered result outranks the role's vars and defaults for the rest of the play: a
    register named like one of them replaces that value with a task's result (a site name became a
    dict, and the next task linked a file by the dict's text)."""
    names = set()
    for part in ("vars", "defaults"):
        names |= set(re.findall(r"^(\w+):", (ROLE / part / "main.yml").read_text(encoding="utf-8"), re.M))
    assert "__lernmanager_nginx_site" in names
    assert sorted(names & set(REGISTERED)) == []
