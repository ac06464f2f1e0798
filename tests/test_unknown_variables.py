"""The filter unknown_variables (plugins/filter/variables.py): a misspelt setting is named with the
known one it resembles, an unrelated name alone, and the shared prefix makes no two names alike."""

import pytest
from ansible.errors import AnsibleFilterError

from helpers import load_plugin

unknown_variables = load_plugin("plugins/filter/variables.py").unknown_variables
KNOWN = ["lernmanager_server_name", "lernmanager_source", "lernmanager_admin_password", "lernmanager_tls",
         "lernmanager_gunicorn_threads"]


def test_a_misspelt_name_is_named_with_the_known_one_it_resembles():
    assert unknown_variables(["lernmanager_server_nmae", "lernmanager_admin_pasword", "lernmanager_tls"], KNOWN,
                             "lernmanager_") == [
        "lernmanager_admin_pasword (did you mean lernmanager_admin_password?)",
        "lernmanager_server_nmae (did you mean lernmanager_server_name?)"]


def test_a_name_like_none_is_named_alone_whatever_prefix_it_shares():
    assert unknown_variables(["lernmanager_colour", "lernmanager_xyz"], KNOWN, "lernmanager_") == [
        "lernmanager_colour", "lernmanager_xyz"]


def test_known_names_pass():
    assert unknown_variables(KNOWN, KNOWN, "lernmanager_") == []


@pytest.mark.parametrize("names, known, prefix", [("lernmanager_x", KNOWN, ""), (["x"], "lernmanager_x", ""),
                                                 (["x"], KNOWN, 3)])
def test_wrong_arguments_are_refused(names, known, prefix):
    with pytest.raises(AnsibleFilterError):
        unknown_variables(names, known, prefix)
