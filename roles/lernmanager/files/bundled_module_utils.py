# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
# The start of each script the role installs on the host (lernmanager-backup, lernmanager-notify),
# after its shebang and MODULE_UTILS = {name: source}, the collection's module_utils in the order
# they import each other: it loads them under their own names, as Ansible ships them inside each
# module's payload, so the host's scripts and the modules share one way of doing things and the host
# needs no copy of the collection. (In the collection the scripts are plain modules, which tests
# import with the collection on sys.path.)
import sys as _sys
import types as _types


def _load_module_utils(sources):
    package = "ansible_collections.lernmanager.deploy.plugins.module_utils"
    parts = package.split(".")
    for end in range(1, len(parts) + 1):
        parent = _types.ModuleType(".".join(parts[:end]))
        parent.__path__ = []
        _sys.modules.setdefault(parent.__name__, parent)
    for name, source in sources.items():
        module = _types.ModuleType(f"{package}.{name}")
        _sys.modules[module.__name__] = module
        exec(compile(source, f"{_sys.argv[0]}:{name}", "exec"), module.__dict__)  # pylint: disable=exec-used


if __name__ == "__main__" and "MODULE_UTILS" in globals():
    _load_module_utils(globals()["MODULE_UTILS"])
