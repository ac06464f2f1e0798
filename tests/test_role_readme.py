"""The role's README documents every public variable of the argument specs."""

import pytest

from helpers import ROLE, role_argument_specs

README = (ROLE / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(role_argument_specs()))
def test_variable_is_in_the_readme_table(name):
    assert f"| `{name}` |" in README


def readme_rows():
    """{variable: (type column, default column)} of the README's variable table."""
    import re
    rows = {}
    for line in README.splitlines():
        match = re.match(r"^\| `(lernmanager_\w+)` \| ([^|]*) \| ([^|]*) \|", line)
        if match:
            rows[match.group(1)] = (match.group(2).strip(), match.group(3).strip())
    return rows


def shown(value):
    """A default as the table writes it in backticks."""
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return '""'
    return {(): "[]", "{}": "{}"}.get(tuple(value) if isinstance(value, list) else str(value), str(value))


def test_the_table_lists_exactly_the_argument_specs():
    assert sorted(readme_rows()) == sorted(role_argument_specs())


@pytest.mark.parametrize("name", sorted(role_argument_specs()))
def test_the_table_gives_the_specs_type_choices_and_default(name):
    spec = role_argument_specs()[name]
    type_column, default_column = readme_rows()[name]
    expected_type = spec["type"] + (f" of {spec['elements']}" if spec.get("elements") else "")
    if spec.get("choices"):
        expected_type += f" ({'/'.join(spec['choices'])})"
    assert type_column == expected_type
    if default_column.startswith("`"):
        assert default_column == f"`{shown(spec['default'])}`"
    else:  # described in words: only where the value is too long for the table
        assert len(str(spec["default"])) > 40, f"{name}: give the default {spec['default']!r} itself"
