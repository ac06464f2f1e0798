# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""The one way this collection's modules act as the service user.

The service user's directories (shared/data, shared/instance) may hold planted links and crafted
files: root never reads or writes a name there. A module that must, forks; the child drops to the
service user for good (no supplementary groups, the service's umask, no descriptor of root's kept
open, none of root's environment: a backup's carries the repository's credentials) and runs one
function; the parent talks to it only through pipes: a byte stream either way and the function's
JSON result. The child's changed credentials make it non-dumpable, so the service user cannot
attach to it either; but it can stop it (SIGSTOP) or make it hang: a child still running after
the user's timeout is killed and the call fails.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import threading
import traceback

UMASK = 0o027  # the unit's UMask=: files come out as the service's own would
# The backup unit's own bound (TimeoutStartSec=6h): a school's uploads streamed to a slow repository.
TIMEOUT = 6 * 3600


class LernmanagerError(Exception):
    """A failure with a message meant for the person running the play."""


def empty_directory(top, **_):
    """(As the service user, in its own directories) Everything in top removed, top kept: rmtree
    never follows a link, and a planted one goes like any file."""
    for name in os.listdir(top):
        path = os.path.join(top, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


class ServiceUser:
    def __init__(self, name, timeout=TIMEOUT):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise LernmanagerError(f"no such user: {name}") from None
        if entry.pw_uid == 0:
            raise LernmanagerError(f"{name} is root: the service user must be unprivileged")
        self.name, self.uid, self.gid, self.home = name, entry.pw_uid, entry.pw_gid, entry.pw_dir
        self.timeout = timeout

    def _become(self, keep):
        """In the child: nothing of root's left open, then root's privileges dropped for good."""
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
            if fd > 2 and fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        os.setgroups([])
        os.setgid(self.gid)
        os.setuid(self.uid)
        if os.getuid() != self.uid or os.geteuid() != self.uid or os.getgroups():
            raise LernmanagerError("could not drop to the service user")
        os.umask(UMASK)
        os.chdir("/")
        os.environ.clear()
        os.environ.update(PATH="/usr/sbin:/usr/bin:/sbin:/bin", LANG="C.UTF-8", HOME=self.home, USER=self.name,
                          LOGNAME=self.name)

    def run(self, func, *args, feed=None, read=None, **kwargs):
        """func(*args, stdin=, stdout=, **kwargs) as the service user; returns its (JSON-able) result.

        feed(writer) writes the child's stdin, read(reader) reads its stdout (each a binary file,
        None when not given). A LernmanagerError in the child comes back as one; any other error
        as a LernmanagerError with its traceback's end."""
        result_r, result_w = os.pipe()
        in_r, in_w = os.pipe() if feed else (None, None)
        out_r, out_w = os.pipe() if read else (None, None)
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                self._become({result_w, in_r, out_w} - {None})
                stdin = os.fdopen(in_r, "rb") if in_r is not None else None
                stdout = os.fdopen(out_w, "wb") if out_w is not None else None
                value = func(*args, stdin=stdin, stdout=stdout, **kwargs)
                if stdout is not None:
                    stdout.close()
                payload, code = {"value": value}, 0
            except LernmanagerError as error:
                payload = {"error": str(error)}
            except BaseException as error:  # pylint: disable=broad-except
                payload = {"error": f"{type(error).__name__}: {error}\n{traceback.format_exc()[-2000:]}"}
            try:
                with os.fdopen(result_w, "wb") as out:
                    out.write(json.dumps(payload).encode())
            finally:
                os._exit(code)
        os.close(result_w)
        for fd in (in_r, out_w):
            if fd is not None:
                os.close(fd)
        parent_error = None
        # Killing the child closes its ends of the pipes: every read and write below then ends. By
        # its pidfd: once reaped, its pid may be another process's.
        pidfd, fired = os.pidfd_open(pid), []

        def kill():
            fired.append(True)
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        watchdog = threading.Timer(self.timeout, kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            if feed:
                with os.fdopen(in_w, "wb") as writer:
                    try:
                        feed(writer)
                    except BrokenPipeError:
                        pass  # the child stopped reading: its result says why
            if read:
                with os.fdopen(out_r, "rb") as reader:
                    try:
                        read(reader)
                    except Exception as error:  # pylint: disable=broad-except
                        parent_error = error  # reported after the child is reaped
        finally:
            with os.fdopen(result_r, "rb") as results:
                raw = results.read()
            status = os.waitpid(pid, 0)[1]
            watchdog.cancel()
            watchdog.join()
            os.close(pidfd)
        if fired:
            raise LernmanagerError(f"as {self.name}: {getattr(func, '__name__', func)} did not finish within "
                                   f"{self.timeout} s and was killed (stopped or hung: a process of {self.name} "
                                   "may have been tampered with)")
        try:
            payload = json.loads(raw.decode() or "{}")
        except ValueError:
            payload = {"error": f"unreadable result: {raw[:200]!r}"}
        child_error = payload.get("error") or (
            f"ended with status {status}" if os.waitstatus_to_exitcode(status) != 0 else None)
        if parent_error is not None:
            raise LernmanagerError(f"{parent_error} (as {self.name}: {child_error or 'no error'})")
        if child_error:
            raise LernmanagerError(child_error)
        return payload["value"]
