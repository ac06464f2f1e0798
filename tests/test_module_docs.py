"""Every plugin of the collection is listed and documented as `ansible-doc` shows it."""

import json
import re

import pytest

from helpers import COMMON_RESULT_KEYS, REPO, documented_returns, run_ansible

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


def exit_keywords(source):
    """The keys a module's exit_json calls name outright (a **mapping's keys are checked at run time,
    by every test that runs the module: helpers.documented)."""
    import ast
    return {keyword.arg for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "exit_json"
            for keyword in node.keywords if keyword.arg}


def module_text(name):
    """A module's source, and with it its action plugin and the collection's module_utils they
    import: where its results are made."""
    source = (REPO / "plugins" / "modules" / f"{name}.py").read_text(encoding="utf-8")
    action = REPO / "plugins" / "action" / f"{name}.py"
    text = source + (action.read_text(encoding="utf-8") if action.exists() else "")
    utils = set(re.findall(r"plugins\.module_utils\.(\w+) import", text))
    return source, text + "".join((REPO / "plugins" / "module_utils" / f"{u}.py").read_text(encoding="utf-8")
                                  for u in sorted(utils))


@pytest.mark.parametrize("name", MODULES)
def test_each_module_returns_what_its_return_documents(name):
    source, text = module_text(name)
    documented = documented_returns(name)
    assert exit_keywords(source) - documented - COMMON_RESULT_KEYS == set(), f"{name}: exit_json names undocumented keys"
    # Every documented key is made somewhere: a keyword, a dict key or an item set by that name.
    made = {key for key in documented if re.search(rf"""\b{key}=|["']{key}["']""", text)}
    assert documented - made == set(), f"{name}: RETURN documents keys it never returns"
