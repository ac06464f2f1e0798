"""The two benchmark containers and how the harness talks to them.

lm-bench-vps   the "1 CPU / 1 GB VPS": systemd as PID 1, pinned to core 0, 1 GB without swap,
               started exactly like scripts/demo.sh starts its VPS (testbed.md flags).
lm-bench-load  the load generator (wrk, curl), pinned to the OTHER core so it does not steal the
               VPS's only CPU, and sharing the VPS's network namespace: all benchmark traffic
               stays on the VPS's own loopback, nothing is published on the host.
"""

import os
import pathlib
import shlex
import subprocess
import time

VPS = "lm-bench-vps"
LOAD = "lm-bench-load"
NAMES = (LOAD, VPS)
PROBE = "/root/bench-probe.py"  # files/probe.py in the VPS  # the load container lives in the VPS's namespace: remove it first

SYSTEMD_FLAGS = [
    "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", "--tmpfs", "/run", "--tmpfs", "/run/lock",
    "--tmpfs", "/tmp", "--stop-signal", "SIGRTMIN+3",
]
VPS_LIMITS = ["--cpuset-cpus", "0", "--memory", "1g", "--memory-swap", "1g"]


def run(argv, check=True, capture=True, timeout=None, input_text=None, env=None, cwd=None):
    """subprocess.run with text output; raises with the command's stderr on failure."""
    result = subprocess.run(argv, text=True, capture_output=capture, timeout=timeout,
                            input=input_text, env=env, cwd=cwd)
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()[-2000:] if capture else ""
        raise RuntimeError(f"command failed ({result.returncode}): {' '.join(argv)}\n{detail}")
    return result


def put(container, path, text):
    """TEXT into the file PATH in CONTAINER, its directory made if missing (through stdin: nothing
    on a command line)."""
    run(["docker", "exec", "-i", container, "bash", "-c",
         f"mkdir -p {shlex.quote(str(pathlib.PurePosixPath(path).parent))} && cat > {shlex.quote(str(path))}"],
        input_text=text)

def exec_sh(container, script, check=True, timeout=600):
    """Run a bash script inside a container and return its stdout."""
    return run(["docker", "exec", container, "bash", "-euo", "pipefail", "-c", script],
               check=check, timeout=timeout).stdout


def exists(name):
    return run(["docker", "container", "inspect", name], check=False).returncode == 0


def remove_all():
    # Only our own containers, by exact name: others run their Molecule containers here too.
    for name in NAMES:
        if exists(name):
            run(["docker", "rm", "-f", name], check=False)


def start(image, cache_dir, files_dir):
    """Start both containers (removing leftovers of an earlier run first)."""
    remove_all()
    cache = pathlib.Path(cache_dir)
    # Our own apt/pip caches: apt's lock would collide with other people's containers that use
    # the default shared cache directory. The load container gets its own apt directory too.
    for sub in ("apt-bookworm/partial", "apt-load/partial", "pip"):
        (cache / sub).mkdir(parents=True, exist_ok=True)
    run(["docker", "run", "-d", "--name", VPS, "--hostname", VPS, *SYSTEMD_FLAGS, *VPS_LIMITS,
         "-v", f"{cache}/apt-bookworm:/var/cache/apt/archives",
         "-v", f"{cache}/pip:/root/.cache/pip",
         image, "/lib/systemd/systemd"])
    run(["docker", "run", "-d", "--name", LOAD, "--network", f"container:{VPS}",
         "--cpuset-cpus", "1", "-v", f"{cache}/apt-load:/var/cache/apt/archives",
         "-v", f"{files_dir}:/bench:ro", image, "sleep", "infinity"])


def install_wrk():
    """Debian's wrk in the load container (its mirror is reachable from containers)."""
    # curl too: the images are minimal (scripts/testbed.sh); wait_http asks with it.
    exec_sh(LOAD, "command -v wrk >/dev/null && command -v curl >/dev/null || { apt-get update -qq && "
                  "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk curl >/dev/null; }",
            timeout=900)
    # "wrk debian/4.1.0-3+b2 [epoll] Copyright ..." -> "wrk debian/4.1.0-3+b2"
    return " ".join(exec_sh(LOAD, "wrk --version 2>&1 | head -n1 || true").split()[:2])


def copy_in(container, source, dest):
    run(["docker", "cp", str(source), f"{container}:{dest}"])


def container_memory(name=VPS):
    """The container's memory as the host's cgroup v1 sees it: `usage` includes page cache;
    `working_set` = usage minus inactive file pages (what `docker stats` shows)."""
    cid = run(["docker", "inspect", "-f", "{{.Id}}", name]).stdout.strip()
    base = pathlib.Path("/sys/fs/cgroup/memory/docker") / cid
    try:
        usage = int((base / "memory.usage_in_bytes").read_text())
        stat = dict(line.split() for line in (base / "memory.stat").read_text().splitlines())
    except OSError:
        return None  # cgroup v2 or another driver: reported as not measured
    inactive = int(stat.get("total_inactive_file", 0))
    return {"usage_mib": usage / 2**20, "working_set_mib": (usage - inactive) / 2**20}


def wait_http(url, host="lernmanager.test", timeout=60):
    """Wait until URL answers 200, asked from the load container (the VPS's loopback)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = run(["docker", "exec", LOAD, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                   "-H", f"Host: {host}", url], check=False).stdout.strip()
        if out == "200":
            return
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


def host_info():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    others = [n for n in run(["docker", "ps", "--format", "{{.Names}}"], check=False)
              .stdout.split() if not n.startswith("lm-bench-")]
    return {
        "uname": run(["uname", "-a"]).stdout.strip(),
        "nproc": int(run(["nproc"]).stdout),
        "cpu_model": cpu,
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "other_containers_at_start": others,
    }


def container_oom_kills(name=VPS):
    """Processes the kernel's OOM killer ended in the container so far: its "oom-kill:" lines in
    the kernel log that name a memory cgroup of this container (the container's own 1 GB, or a
    unit's MemoryMax inside it). Counters in the cgroups would be lost with a stopped unit's
    cgroup. Where the kernel log cannot be read, the cgroup v1 counters are summed instead."""
    cid = run(["docker", "inspect", "-f", "{{.Id}}", name]).stdout.strip()
    kernel_log = run(["dmesg"], check=False)
    if kernel_log.returncode == 0:
        return sum(1 for line in kernel_log.stdout.splitlines()
                   if "oom-kill:" in line and f"task_memcg=/docker/{cid}" in line)
    total = 0
    for path in (pathlib.Path("/sys/fs/cgroup/memory/docker") / cid).rglob("memory.oom_control"):
        try:
            total += int(dict(line.split() for line in path.read_text().splitlines()).get("oom_kill", 0))
        except (OSError, ValueError):
            pass  # gone meanwhile; on cgroup v2 there is none (the SIGKILL lines still tell)
    return total
