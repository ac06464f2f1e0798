# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""job_outcome.py OK_OUTPUT -- COMMAND...: a scheduled job's command, whose output it passes on line
by line (to the journal), and whose exit status it keeps, except that a run that exits non-zero and
whose output matches OK_OUTPUT (a Python regular expression, searched in the whole output) has
succeeded: it says it had nothing to do. Upstream's weekly reports exit 1 on a school with no
classes yet, which would otherwise fail the job, and alert, every week (the job's `ok_output`).
Run by the job's unit, as the service user in the job's sandbox; the role installs it root's, 0644."""

import re
import signal
import subprocess
import sys

KEPT = 1 << 20  # the output's last MiB is what OK_OUTPUT is searched in


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    ok_output = re.compile(argv[1], re.MULTILINE)
    child = subprocess.Popen(argv[3:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
    # systemd stops the unit with SIGTERM to this process: the command gets it too.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda signum, _frame: child.send_signal(signum))
    output = bytearray()
    for line in child.stdout:
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
        output += line
        del output[:-KEPT]
    status = child.wait()
    if status == 0:
        return 0
    if status > 0 and ok_output.search(output.decode(errors="replace")):
        print(f"job_outcome: exit status {status}, and the output says there was nothing to do (ok_output): done",
              flush=True)
        return 0
    return status if status > 0 else 128 - status  # killed by a signal: as a shell reports it


if __name__ == "__main__":
    sys.exit(main(sys.argv))
