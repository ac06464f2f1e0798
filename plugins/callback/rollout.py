# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One line per host at the end of a run of the collection's playbooks: what it runs now, how its
run ended, and how long it took; hosts a stopped rollout never reached are listed too.

Why a callback and not a last play: when a canary fails (or more hosts fail than
lernmanager_max_fail_percentage allows), Ansible ends the whole playbook, and a last play would
never run. The role records each host's release with set_stats (tasks/steps/run/summary.yml)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: rollout
type: aggregate
short_description: one line per host after a deploy, rollback, backup or status across a fleet
description:
  - At the end of the run, prints for every host of the plays (in inventory order) the release it
    serves, the release this run was about when it is another, how the host's run ended
    (C(ok), C(changed), C(failed), C(unreachable), or C(not started) when the rollout stopped before
    its batch), and the seconds from its first to its last task.
  - The release comes from the role's C(set_stats) record; hosts without one show C(-). After
    C(status.yml), the record's status line (what serves, health, backup, certificate, disk) takes
    the release's place. A host
    that ran without trouble and without that record (a play on the controller, say) has no line,
    and a run without any host of the role prints nothing.
  - Below each host's line, every warning of its run, once, in the order it came (the role's
    C(WARNING:) messages and Ansible's own warnings of its tasks), so a warning given among a
    hundred tasks is seen where the run ends.
requirements:
  - enabled in ansible.cfg (C(callbacks_enabled = lernmanager.deploy.rollout)); the collection's
    ansible.cfg enables it.
"""

import re
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lernmanager.deploy.rollout"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._hosts = []  # every host of the plays, in inventory order, reached or not
        self._first = {}
        self._last = {}
        self._warnings = {}  # host: its run's warnings, each once, in order

    def v2_playbook_on_play_start(self, play):
        inventory = play.get_variable_manager()._inventory  # pylint: disable=protected-access
        # The play's whole host list: the inventory is restricted to the current batch by now.
        for host in inventory.get_hosts(play.hosts, ignore_restrictions=True):
            if host.name not in self._hosts:
                self._hosts.append(host.name)

    def _seen(self, result, *args, **kwargs):
        name = result._host.get_name()  # pylint: disable=protected-access
        now = time.monotonic()
        self._first.setdefault(name, now)
        self._last[name] = now

    def v2_runner_on_start(self, host, task):
        now = time.monotonic()
        self._first.setdefault(host.get_name(), now)
        self._last[host.get_name()] = now

    v2_runner_on_failed = v2_runner_on_skipped = v2_runner_on_unreachable = _seen

    def v2_runner_on_ok(self, result, *args, **kwargs):
        self._seen(result)
        outcome = result._result  # pylint: disable=protected-access
        found = [str(warning) for warning in outcome.get("warnings") or []]
        message = outcome.get("msg")
        if result._task.action in ("debug", "ansible.builtin.debug") and isinstance(message, str) \
                and message.lstrip().startswith("WARNING:"):  # pylint: disable=protected-access
            found.append(message.lstrip()[len("WARNING:"):])
        warnings = self._warnings.setdefault(result._host.get_name(), [])  # pylint: disable=protected-access
        for warning in found:
            line = re.sub(r"\s+", " ", warning).strip()
            if line and line not in warnings:
                warnings.append(line)

    def v2_playbook_on_stats(self, stats):
        # A host that ran without the role's record and without trouble ran no deploy (the
        # controller building an app, Molecule creating containers): it has no line, and a run
        # without any other host prints nothing.
        lines = [line for line in (self._line(host, stats) for host in self._hosts)
                 if line[1] not in ("ok", "changed") or line[2] != "serves -" or self._warnings.get(line[0])]
        if not lines:
            return
        width = max(len(line[0]) for line in lines)
        statuses = any(stats.custom.get(host, {}).get("lernmanager", {}).get("status") for host in self._hosts)
        self._display.banner("LERNMANAGER STATUS" if statuses else "LERNMANAGER ROLLOUT")
        for host, result, release, seconds in lines:
            self._display.display(f"{host:<{width}}  {result:<11}  {release}  {seconds}")
            for warning in self._warnings.get(host, []):
                self._display.display(f"  warning: {warning}", color="bright purple")

    def _line(self, host, stats):
        summary = stats.summarize(host)
        if host not in stats.processed:
            result = "not started"
        elif summary["unreachable"]:
            result = "unreachable"
        elif summary["failures"]:
            result = "failed"
        else:
            result = "changed" if summary["changed"] else "ok"
        record = stats.custom.get(host, {}).get("lernmanager", {})
        live, wanted = record.get("live") or "-", record.get("release") or ""
        release = f"serves {live}" + (f" (not {wanted})" if wanted and wanted != live else "")
        if record.get("status"):  # status.yml: the host's whole status line
            release = record["status"]
        if result == "not started":
            release = "untouched"
        seconds = f"{self._last[host] - self._first[host]:.0f} s" if host in self._first else "-"
        return host, result, release, seconds
