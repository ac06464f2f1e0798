"""Every program the role runs on a host comes from a package the role installs, or from the
smallest Debian a VPS can be (debootstrap minbase with systemd, python3, ca-certificates,
iproute2 and sudo). The test bed's images hold only that, so a miss shows in Molecule too; this
test names it before any container starts.

Found by reading the role: `command`/`shell` tasks (the first word of every command in a shell
line), `validate:` commands, `Exec*=` lines of the unit templates, the apt hook's command and
the shell scripts the role writes. Tasks that run on the controller are left out.
"""

import pathlib
import re
import shlex

import pytest
import yaml

from helpers import REPO, ROLE, load_yaml

# What `debootstrap --variant=minbase` installs (Essential: yes, and apt), plus what a minimal VPS
# template adds (testbed.md, scripts/testbed.sh).
MINIMAL_PACKAGES = {
    "apt", "base-files", "base-passwd", "bash", "bsdutils", "coreutils", "dash", "debianutils",
    "diffutils", "dpkg", "findutils", "grep", "gzip", "hostname", "init-system-helpers", "libc-bin",
    "login", "mount", "ncurses-bin", "perl-base", "sed", "sysvinit-utils", "tar", "util-linux",
    "systemd", "systemd-sysv", "python3", "ca-certificates", "iproute2", "sudo",
}

# Where each program the role calls comes from on Debian 12 and 13. A program missing here makes
# the test fail: add it with its package (`dpkg -S /usr/bin/NAME` on a Debian host).
EXECUTABLE_PACKAGE = {
    "python3": "python3",
    "/usr/bin/python3": "python3",
    "curl": "curl",
    "nginx": "nginx",
    "sqlite3": "sqlite3",
    "git": "git",
    "openssl": "openssl",
    "certbot": "certbot",
    "nft": "nftables",
    "/usr/sbin/nft": "nftables",
    "brotli": "brotli",
    "logrotate": "logrotate",
    "kill": "procps",
    "/bin/kill": "procps",
    "systemctl": "systemd",
    "journalctl": "systemd",
    "systemd-analyze": "systemd",
    "mv": "coreutils",
    "cp": "coreutils",
    "rm": "coreutils",
    "chown": "coreutils",
    "chmod": "coreutils",
    "install": "coreutils",
    "tar": "tar",
    "find": "findutils",
    "runuser": "util-linux",
    "setpriv": "util-linux",
    "invoke-rc.d": "init-system-helpers",
    "/bin/sh": "dash",
    "sh": "dash",
    "mkdir": "coreutils",
    "grep": "grep",
    "mountpoint": "util-linux",
}
# Not programs: the shell runs these itself.
SHELL_BUILTINS = {"umask", "cd", "test", "[", "exit", "set", "export", "true", "false", "echo",
                  "printf", "read", "if", "then", "fi", "else", "for", "do", "done"}


def installed_packages():
    """Packages the role's tasks install: its package lists and every literal apt `name:`."""
    variables = load_yaml(ROLE / "vars" / "main.yml")
    packages = set(variables["__lernmanager_packages"]) | set(variables["__lernmanager_brotli_packages"])
    # The ones the list adds when a setting asks for them (nftables with the firewall, certbot with ACME).
    packages.update(re.findall(r"\['([\w.+-]+)'\]", variables["__lernmanager_wanted_packages"]))
    for task in all_tasks():
        apt = task.get("ansible.builtin.apt")
        if isinstance(apt, dict) and isinstance(apt.get("name"), str) and "{{" not in apt["name"]:
            packages.add(apt["name"])
        elif isinstance(apt, dict) and isinstance(apt.get("name"), list):
            packages.update(n for n in apt["name"] if "{{" not in n)
    return packages


def task_files():
    return sorted(ROLE.glob("tasks/**/*.yml")) + sorted((REPO / "playbooks").glob("*.yml"))


def walk(tasks):
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
            yield from walk(task.get(key))


def all_tasks():
    for path in task_files():
        yield from walk(load_yaml(path))


def on_the_host(task):
    return task.get("delegate_to") not in ("localhost", "127.0.0.1") and task.get("connection") != "local"


CONTROL = {"&&", "||", ";", "|", "(", ")", "!", "if", "then", "else", "elif", "do", "while", "until"}


def shell_programs(script):
    """The program of every command in a shell script: at the start of each line and after
    &&, ||, ;, |, `if`, `then`, ... (quotes respected; VAR=value prefixes skipped)."""
    programs = []
    # Jinja expressions ({{ x | quote }}) hold pipes and spaces: one opaque word each while lexing.
    expressions = re.findall(r"{{.*?}}", script)
    for number, expression in enumerate(expressions):
        script = script.replace(expression, f"JINJA{number}X", 1)

    def restore(word):
        return re.sub(r"JINJA(\d+)X", lambda m: expressions[int(m.group(1))], word)

    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        expect_command = True
        for token in lexer:
            if token in CONTROL:
                expect_command = True
            elif expect_command and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", token):
                continue  # VAR=value before the program
            elif expect_command:
                expect_command = False
                if token not in SHELL_BUILTINS and not token.startswith("#!"):
                    programs.append(restore(token))
    return programs


def first_of_argv(argv):
    if isinstance(argv, list):
        return str(argv[0])
    match = re.search(r"\[\s*['\"]([^'\"]+)['\"]", str(argv))  # "{{ ['python3', ...] + ... }}"
    if match:
        return match.group(1)
    # "{{ [__lernmanager_venv + '/bin/python', ...] + ... }}": the program as a template writes it.
    match = re.search(r"^{{\s*\[\s*(\w+)\s*\+\s*['\"]([^'\"]+)['\"]\s*,", str(argv))
    return f"{{{{ {match.group(1)} }}}}{match.group(2)}" if match else str(argv)


def programs_in_tasks():
    found = []
    for path in task_files():
        for task in walk(load_yaml(path)):
            if not on_the_host(task):
                continue
            where = f"{path.relative_to(REPO)}: {task.get('name', '?')}"
            for module in ("ansible.builtin.command", "ansible.builtin.shell", "command", "shell"):
                args = task.get(module)
                if args is None:
                    continue
                if isinstance(args, str):
                    found += [(p, where) for p in shell_programs(args)]
                elif "argv" in args:
                    found.append((first_of_argv(args["argv"]), where))
                elif "cmd" in args:
                    found += [(p, where) for p in shell_programs(args["cmd"])]
            for module_args in task.values():
                if isinstance(module_args, dict) and isinstance(module_args.get("validate"), str):
                    found += [(p, where + " (validate)") for p in shell_programs(module_args["validate"])]
                if isinstance(module_args, dict) and str(module_args.get("content", "")).startswith("#!/bin/sh"):
                    found += [(p, where + " (script)") for p in shell_programs(module_args["content"])]
    return found


def programs_in_templates():
    found = []
    for path in sorted(ROLE.glob("templates/*.j2")):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^Exec\w*=[-+!@:]*({{.*?}}\S*|\S+)", text, re.M):
            found.append((match.group(1), f"{path.name}: {match.group(0)}"))
        for match in re.finditer(r"^DPkg::\w+-Invoke\s*\{\s*\"(.*)\";\s*\};", text, re.M):
            found += [(p, f"{path.name}: apt hook") for p in shell_programs(match.group(1))]
        for match in re.finditer(r"^\s*(?:pre|post)rotate\n(.*?)\n\s*endscript", text, re.M | re.S):
            found += [(p, f"{path.name}: logrotate script") for p in shell_programs(match.group(1))]
    return found


CALLED = sorted(set(programs_in_tasks() + programs_in_templates()))


def test_the_reader_finds_what_the_role_calls():
    # The reader itself must see the calls this issue was about: /bin/kill in the unit, nginx -t,
    # curl in the health check, the apt hook's python3.
    programs = {program for program, _ in CALLED}
    assert {"/bin/kill", "nginx", "curl", "systemd-analyze", "certbot", "nft", "openssl"} <= programs, programs


@pytest.mark.parametrize("program, where", [c for c in CALLED if not c[0].startswith("{{")],
                         ids=[f"{c[0]}@{c[1][:60]}" for c in CALLED if not c[0].startswith("{{")])
def test_every_called_program_is_installed_by_the_role_or_on_a_minimal_host(program, where):
    assert program in EXECUTABLE_PACKAGE, (
        f"{where} calls {program!r}: add it to EXECUTABLE_PACKAGE with its Debian package")
    package = EXECUTABLE_PACKAGE[program]
    assert package in installed_packages() | MINIMAL_PACKAGES, (
        f"{where} calls {program!r} from the package {package!r}, which the role does not install "
        f"and a minimal Debian does not have: add it to __lernmanager_packages (roles/lernmanager/vars/main.yml)")


def test_role_owned_programs_are_the_venv_and_the_host_scripts():
    # Programs given as a Jinja expression must be what the role itself puts on the host.
    templated = {program for program, _ in CALLED if program.startswith("{{")}
    # The jobs' command is the inventory's: a program of the release's venv, or an absolute path it names.
    jobs = "{{ __lernmanager_job_exec | replace('%', '%%') | replace('$', '$$') }}"
    assert templated <= {"{{ __lernmanager_venv }}/bin/python", "{{ __lernmanager_backup_script }}",
                         "{{ __lernmanager_notify_script }}", jobs}, templated
