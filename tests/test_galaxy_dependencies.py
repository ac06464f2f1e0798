"""galaxy.yml's `dependencies` are exactly the collections the role, the playbooks and the plugins
use: every FQCN (module, filter, test, lookup, callback) outside ansible.builtin and this collection
must be listed, and nothing else may be."""

import re

from helpers import REPO, load_yaml

OWN = "lernmanager.deploy"
BUILTIN = {"ansible.builtin", "ansible.legacy"}
# A module or action as a task's key, a role by name, a filter or test after | or `is`, a lookup.
USES = [
    re.compile(r"^\s*-?\s*([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+:", re.M),
    re.compile(r"role:\s*([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+"),
    re.compile(r"(?:\||\bis(?:\s+not)?)\s*([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+"),
    re.compile(r"(?:lookup|query)\(\s*['\"]([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+"),
    re.compile(r"callbacks_enabled\s*=\s*([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+"),
]


def used_collections():
    used = set()
    paths = [*REPO.glob("roles/**/*.yml"), *REPO.glob("roles/**/*.j2"), *REPO.glob("playbooks/*.yml"),
             REPO / "ansible.cfg"]
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for pattern in USES:
            used.update(pattern.findall(text))
    return used


def test_the_reader_sees_the_collections_own_plugins():
    assert OWN in used_collections()


def test_galaxy_dependencies_are_the_collections_the_role_uses():
    declared = set((load_yaml(REPO / "galaxy.yml").get("dependencies") or {}).keys())
    assert used_collections() - BUILTIN - {OWN} == declared
