"""Test only: SIGKILL this ansible-playbook, with its whole process group, at a named point.

As a dropped SSH connection ends a run: no cleanup, no `always`, no rescue. Enabled by the tests
with ANSIBLE_CALLBACKS_ENABLED=lm_kill and ANSIBLE_CALLBACK_PLUGINS pointing here; the run must
be started in a session of its own (the kill takes its process group).

LM_KILL_AT: a task name, or the end of one (role tasks are named "role : task").
LM_KILL_ON: task_start (the task is about to be sent to the hosts: nothing of it ran) or
runner_start (the task is running on a host: its result never arrives).
"""

import os
import signal

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: lm_kill
    type: aggregate
    short_description: SIGKILL the run at a named task (tests of killed runs)
    description: Reads LM_KILL_AT and LM_KILL_ON from the environment.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lm_kill"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._at = os.environ.get("LM_KILL_AT", "")
        self._on = os.environ.get("LM_KILL_ON", "task_start")

    def _kill_at(self, task, event):
        if self._at and event == self._on and task.get_name().endswith(self._at):
            os.killpg(os.getpgrp(), signal.SIGKILL)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._kill_at(task, "task_start")

    def v2_runner_on_start(self, host, task):
        self._kill_at(task, "runner_start")
