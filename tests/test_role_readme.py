"""The role's README documents every public variable of the argument specs."""

import pytest

from helpers import ROLE, role_argument_specs

README = (ROLE / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(role_argument_specs()))
def test_variable_is_in_the_readme_table(name):
    assert f"| `{name}` |" in README
