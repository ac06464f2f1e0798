# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""The period a venv belongs to: a new period is a new venv, so dependencies get their fixes."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

SECONDS_PER_DAY = 86400


def venv_period(epoch_seconds, max_age_days):
    """The number of the `max_age_days`-long period (counted from 1970-01-01 UTC) that
    `epoch_seconds` falls in, or 0 when `max_age_days` is 0 (venvs never age).

    Computed from the clock alone, not from the host: every re-run and every host of a fleet agree
    on it, and a deploy never keeps a venv built in an earlier period, so none older than
    `max_age_days`."""
    try:
        max_age = int(max_age_days)
        seconds = int(float(epoch_seconds))
    except (TypeError, ValueError) as error:
        raise AnsibleFilterError(f"venv_period: {error}") from error
    if max_age < 0:
        raise AnsibleFilterError(f"venv_period: max_age_days must be 0 or more (got {max_age})")
    return 0 if max_age == 0 else seconds // SECONDS_PER_DAY // max_age


class FilterModule:
    def filters(self):
        return {"venv_period": venv_period}
