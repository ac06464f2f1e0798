"""Every plugin of the collection is listed and documented as `ansible-doc` shows it."""

import json

import pytest

from helpers import REPO, run_ansible

MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))
FILTERS = sorted(p.stem for p in (REPO / "plugins" / "filter").glob("*.yml"))


def test_ansible_doc_lists_every_module():
    listed = run_ansible("ansible-doc", "-l", "lernmanager.deploy", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(name.split(".")[-1] for name in json.loads(listed.stdout)) == MODULES


@pytest.mark.parametrize("plugin_type, name", [("module", m) for m in MODULES] + [("filter", f) for f in FILTERS])
def test_each_plugin_documents_its_options_examples_and_return(plugin_type, name):
    shown = run_ansible("ansible-doc", "-t", plugin_type, f"lernmanager.deploy.{name}", "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)[f"lernmanager.deploy.{name}"]
    assert doc["doc"]["short_description"] and doc["examples"] and doc["return"] is not None, doc.keys()
    for option, spec in (doc["doc"].get("options") or {}).items():
        assert spec.get("description") and spec.get("type"), f"{name}: option {option} lacks a description or type"
