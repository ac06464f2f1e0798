"""The host lock (plugins/modules/host_lock.py) on a real file, with real processes; and how the
run_holder lookup names a run. No containers: the module's functions are called directly, two
runs are two threads."""

import importlib.util
import os
import threading

from helpers import REPO


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


host_lock = load("plugins/modules/host_lock.py", "host_lock")
run_holder = load("plugins/lookup/run_holder.py", "run_holder")

RUN_A = {"controller": "c", "pid": 10, "started": "b:1", "playbook": "deploy.yml", "since": "t"}
RUN_B = {"controller": "c", "pid": 11, "started": "b:2", "playbook": "backup.yml", "since": "t"}


def test_only_one_run_holds_the_lock_and_only_it_releases_it(tmp_path):
    lock = str(tmp_path / "lock")
    assert host_lock.try_create(lock, RUN_A)
    assert not host_lock.try_create(lock, RUN_B)
    assert host_lock.current_holder(lock) == RUN_A
    assert not host_lock.release(lock, RUN_B), "another run's lock is left alone"
    assert host_lock.release(lock, RUN_A) and not os.path.exists(lock)
    assert os.stat(tmp_path).st_mode  # the directory stays


def test_a_gone_holder_is_taken_over_once(tmp_path):
    lock = str(tmp_path / "lock")
    host_lock.try_create(lock, RUN_A)
    results = []
    takers = [threading.Thread(target=lambda run=run: results.append(host_lock.take_over(lock, run, RUN_A)))
              for run in ({**RUN_B, "pid": n} for n in range(20, 28))]
    for taker in takers:
        taker.start()
    for taker in takers:
        taker.join()
    assert results.count(True) == 1, "one taker wins; the others see a live holder"
    assert host_lock.current_holder(lock)["pid"] in range(20, 28)


def test_a_planted_link_is_never_followed(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep")
    os.symlink(target, tmp_path / "lock")
    assert not host_lock.try_create(str(tmp_path / "lock"), RUN_A)
    try:
        host_lock.current_holder(str(tmp_path / "lock"))
    except OSError:
        pass
    assert target.read_text() == "keep"


def test_the_playbook_is_named_not_the_inventory():
    argv = ["/usr/bin/python3", "/usr/bin/ansible-playbook", "-i", "hosts.yml", "-e", "@vars.yml",
            "--limit", "web.yml", "playbooks/deploy.yml"]
    assert run_holder.playbook_arguments(argv) == ["playbooks/deploy.yml"]


def test_this_process_is_alive_and_a_dead_one_is_gone():
    me = {"controller": os.uname().nodename, "pid": os.getpid(), "started": run_holder.process_start(os.getpid())}
    assert run_holder.holder_state(me) == "alive"
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    assert run_holder.holder_state({**me, "pid": child, "started": "x"}) == "gone"
    assert run_holder.holder_state({**me, "started": "another boot:1"}) == "gone", "a reused PID"
    assert run_holder.holder_state({**me, "controller": "elsewhere"}) == "unknown"
