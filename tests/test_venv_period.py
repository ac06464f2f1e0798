"""The venv period (plugins/filter/venv.py): the part of a release's dependency key that makes a
deploy build a fresh venv once its period of lernmanager_venv_max_age_days has passed."""

import pytest
from ansible.errors import AnsibleFilterError

from helpers import load_plugin

venv_period = load_plugin("plugins/filter/venv.py").venv_period

DAY = 86400


def test_the_same_day_is_the_same_period_all_day():
    start = 20_000 * DAY
    assert venv_period(start, 30) == venv_period(start + DAY - 1, 30)


def test_a_period_lasts_max_age_days_and_no_longer():
    day = 20_010  # a period of 30 days starts on every day divisible by 30
    first = day * DAY
    assert venv_period(first + 29 * DAY, 30) == venv_period(first, 30)
    assert venv_period(first + 30 * DAY, 30) == venv_period(first, 30) + 1


@pytest.mark.parametrize("built_day", range(20_010, 20_040))
def test_no_deploy_keeps_a_venv_older_than_max_age(built_day):
    """Built on any day of a period: the deploy max_age days later is in another period."""
    assert venv_period((built_day + 30) * DAY, 30) != venv_period(built_day * DAY, 30)


def test_zero_means_venvs_never_age():
    assert {venv_period(t * DAY, 0) for t in (0, 20_000, 40_000)} == {0}


def test_floats_from_now_timestamp_and_strings_from_the_command_line():
    assert venv_period(20_000.75 * DAY, "7") == venv_period(20_000 * DAY, 7)


@pytest.mark.parametrize("max_age", [-1, "often", None])
def test_a_bad_max_age_is_an_error_naming_the_filter(max_age):
    with pytest.raises(AnsibleFilterError, match="venv_period"):
        venv_period(20_000 * DAY, max_age)
