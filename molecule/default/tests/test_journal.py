"""The journal's bounds (tasks/steps/host/journal.yml): journald runs with lernmanager_journal_max_use
and lernmanager_journal_retention, for the whole host.

Reads the hosts only."""

import re


def test_journald_runs_with_the_roles_bounds(host):
    conf = host.file("/etc/systemd/journald.conf.d/50-lernmanager.conf")
    assert (conf.user, conf.mode) == ("root", 0o644)
    assert "SystemMaxUse=200M\nMaxRetentionSec=30day\n" in conf.content_string
    # journald says at its start which bound it took: "System Journal (/var/log/journal/...) is 8.0M,
    # max 200.0M, 191.9M free." (the persistent journal; a host without one keeps it in /run).
    started = host.check_output("journalctl -b -u systemd-journald -o cat --no-pager | grep -E 'Journal .* max ' | tail -n 1")
    kind, number, unit = re.search(r"(System|Runtime) Journal .* max ([0-9.]+)([KMG])", started).groups()
    limit_mib = float(number) * {"K": 1 / 1024, "M": 1, "G": 1024}[unit]
    assert kind == "System" and limit_mib <= 200.0, started
