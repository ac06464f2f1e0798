"""meta/argument_specs.yml is the role's typed contract: it must match defaults/main.yml."""

import pytest

from helpers import role_argument_specs, role_defaults

SPECS = role_argument_specs()
DEFAULTS = role_defaults()


def test_every_default_has_a_spec_and_every_spec_a_default():
    assert set(DEFAULTS) == set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_default_equals_defaults_file(name):
    spec = SPECS[name]
    assert "default" in spec or spec.get("required"), f"{name}: neither a default nor required"
    assert spec.get("default") == DEFAULTS[name]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_is_typed_and_described(name):
    spec = SPECS[name]
    assert spec.get("type") in {"str", "int", "bool", "list", "dict", "path", "raw", "float"}
    assert spec.get("description"), f"{name} has no description"
    if spec["type"] == "list":
        assert "elements" in spec, f"{name}: a list needs its element type"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_public_variables_are_prefixed(name):
    assert name.startswith("lernmanager_") and not name.startswith("lernmanager__")
