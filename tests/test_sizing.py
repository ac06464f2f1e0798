"""How the role sizes gunicorn and the service (plugins/filter/sizing.py) over a matrix of vCPUs and
memory, and how it finds the memory a container really has (plugins/modules/cgroup_memory_info.py)."""

import itertools
import json
import sys

import pytest

from helpers import ROLE, controller_play, load_plugin, load_yaml, run_ansible


sizing = load_plugin("plugins/filter/sizing.py")
cgroup = load_plugin("plugins/modules/cgroup_memory_info.py")
ROLE_VARS = load_yaml(ROLE / "vars" / "main.yml")
PEAK = ROLE_VARS["__lernmanager_peak_mib"]
RATE = ROLE_VARS["__lernmanager_hash_rate_per_slot"]

VCPUS = [1, 2, 3, 4, 8, 16]
MEMORY_MB = [512, 768, 1024, 1536, 2048, 4096, 8192, 32768]


def size(vcpus, memory, **given):
    return sizing.gunicorn_sizing(vcpus, memory, worker_peak_mib=PEAK["worker"],
                                  password_check_peak_mib=PEAK["password_check"], hash_rate_per_slot=RATE, **given)


@pytest.mark.parametrize("vcpus, memory", list(itertools.product(VCPUS, MEMORY_MB)))
def test_every_host_gets_a_sizing_that_fits_it(vcpus, memory):
    s = size(vcpus, memory)
    assert 1 <= s["workers"] <= vcpus, "no more workers than vCPUs"
    if s["workers"] > 1:
        assert 512 + 128 * s["workers"] <= memory, "each extra worker fits beside what the host keeps"
    assert s["workers"] * s["threads"] >= 32 and s["threads"] >= 8, "a class of 30 waiting on slow calls"
    assert s["memory_high_mb"] < s["memory_max_mb"] < memory
    assert 1 <= s["hash_slots"] <= vcpus
    if s["hash_slots"] > 1:
        assert s["workers"] * PEAK["worker"] + s["hash_slots"] * PEAK["password_check"] <= s["memory_high_mb"]
    assert s["hash_concurrency"] * s["workers"] <= max(s["hash_slots"], s["workers"])
    assert s["password_rate"] == RATE * s["hash_slots"]


@pytest.mark.parametrize("vcpus, memory, expected", [
    # The target VPS: one worker, its 32 threads, one hash at a time, 8 logins a second.
    (1, 1024, {"workers": 1, "threads": 32, "memory_high_mb": 614, "memory_max_mb": 768, "hash_slots": 1,
               "hash_concurrency": 1, "password_rate": 8}),
    (2, 1024, {"workers": 2, "threads": 16, "memory_high_mb": 614, "memory_max_mb": 768, "hash_slots": 2,
               "hash_concurrency": 1, "password_rate": 16}),
    # 2 GB on 4 vCPUs: the fourth worker fits (512 + 4 x 128 = 1024), so do four hashes.
    (4, 2048, {"workers": 4, "threads": 8, "memory_high_mb": 1228, "memory_max_mb": 1536, "hash_slots": 4,
               "hash_concurrency": 1, "password_rate": 32}),
    # Little memory on many vCPUs: one worker; four hashes fit beside it in MemoryHigh (128 + 4 x 40 <= 307).
    (8, 512, {"workers": 1, "threads": 32, "memory_high_mb": 307, "memory_max_mb": 384, "hash_slots": 4,
              "hash_concurrency": 4, "password_rate": 32}),
])
def test_known_hosts(vcpus, memory, expected):
    result = size(vcpus, memory)
    assert {k: result[k] for k in expected} == expected


def test_the_cgroup_limit_and_given_values_win():
    assert size(4, 16384, cgroup_mb=1024)["memory_mb"] == 1024, "a container's limit, not the machine's RAM"
    assert size(4, 1024, cgroup_mb=8192)["memory_mb"] == 1024
    given = size(1, 1024, memory_mb=4096, workers=3, threads=5, hash_concurrency=2, password_rate=50)
    assert (given["memory_mb"], given["workers"], given["threads"], given["hash_concurrency"],
            given["password_rate"]) == (4096, 3, 5, 2, 50)


@pytest.mark.parametrize("bad", [{"workers": "many"}, {"memory_mb": -1}, {"cgroup_mb": None}])
def test_bad_input_names_the_value(bad):
    with pytest.raises(sizing.AnsibleFilterError, match=next(iter(bad))):
        size(1, 1024, **bad)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_tightest_cgroup_limit_on_the_way_to_the_root_counts(tmp_path):
    proc = tmp_path / "cgroup"
    write(proc, "0::/machine.slice/lm.scope\n")
    write(tmp_path / "fs/machine.slice/lm.scope/memory.max", "max\n")
    write(tmp_path / "fs/machine.slice/memory.max", f"{1024 << 20}\n")
    write(tmp_path / "fs/memory.max", f"{4096 << 20}\n")
    assert min(cgroup.cgroup_limits(str(proc), str(tmp_path / "fs"))) == 1024 << 20


def test_cgroup_v1_no_limit_is_no_limit(tmp_path):
    proc = tmp_path / "cgroup"
    write(proc, "12:cpu,cpuacct:/x\n4:memory:/docker/abc\n")
    write(tmp_path / "fs/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n")
    assert list(cgroup.cgroup_limits(str(proc), str(tmp_path / "fs"))) == []
    assert list(cgroup.cgroup_limits(str(tmp_path / "missing"), str(tmp_path / "fs"))) == []


@pytest.mark.parametrize("memtotal_mb,warned", [(480, True), (957, False)])
def test_a_host_below_900_mib_gets_a_warning_that_says_what_it_means(tmp_path, memtotal_mb, warned):
    """tasks/steps/run/sizing.yml on the controller with the facts of a 512 MB and a 1 GB VPS."""
    (tmp_path / "play.yml").write_text(controller_play(f"""\
    - name: Size as the role does
      ansible.builtin.include_tasks: {ROLE}/tasks/steps/run/sizing.yml
"""))
    facts = json.dumps({"ansible_facts": {"processor_nproc": 1, "memtotal_mb": memtotal_mb},
                        "ansible_python_interpreter": sys.executable})
    run = run_ansible("ansible-playbook", "-i", "localhost,", str(tmp_path / "play.yml"), "-e", facts)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert ("WARNING: the host has 480 MiB of memory" in run.stdout) is warned, run.stdout[-3000:]
    if warned:
        assert "may use 360 MiB before the kernel stops it" in run.stdout
