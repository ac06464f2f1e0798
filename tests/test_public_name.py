"""Which server names count as public (plugins/filter/names.py): on those the role replaces the
app's admin/admin with a generated password even without TLS."""

import pytest
from ansible.errors import AnsibleFilterError

from helpers import load_plugin

public_name = load_plugin("plugins/filter/names.py").public_name


@pytest.mark.parametrize("name", ["lernmanager.gym-beispiel.de", "LERNMANAGER.Schule.EU.", "lm.school-1.org",
                                  "8.8.4.4", "2a01:4f8::1", "[2a01:4f8::1]"])
def test_a_name_or_address_the_internet_reaches_is_public(name):
    assert public_name(name) is True


@pytest.mark.parametrize("name", ["lernmanager.test", "zwei.lernmanager.test", "schule.example", "lm.local",
                                  "lm.home.arpa", "lm.internal", "localhost", "debian", "vps-12", "",
                                  "192.168.1.20", "10.0.0.5", "127.0.0.1", "::1", "fe80::1", "-bad-.de"])
def test_a_test_private_or_bare_name_is_not(name):
    assert public_name(name) is False


def test_a_value_that_is_no_name_is_refused():
    with pytest.raises(AnsibleFilterError, match="expected a host name, got int"):
        public_name(8080)
