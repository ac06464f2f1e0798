#!/usr/bin/env bash
# `ansible-test sanity` on the collection as it is published: the built tarball, unpacked under
# ansible_collections/lernmanager/deploy, with this repository's tests/sanity/ignore-*.txt:
#   - validate-modules:missing-gplv3-license: the collection is AGPL-3.0-or-later, the check
#     wants a GPLv3 header;
#   - shebang: /etc/nftables.conf starts with `#!/usr/sbin/nft -f`, as Debian's own does.
# No Docker: each test's requirements go into ansible-test's venvs (~/.ansible/test/venv).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
bin=$repo/.venv/bin
work=$repo/.cache/sanity
tree=$work/ansible_collections/lernmanager/deploy

rm -rf "$work"
mkdir -p "$tree/tests/sanity"
"$bin/ansible-galaxy" collection build --force --output-path "$work" >/dev/null
tar -xzf "$work"/lernmanager-deploy-*.tar.gz -C "$tree"
cp tests/sanity/ignore-*.txt "$tree/tests/sanity/"

# ansible-test bootstraps pip in its venvs with get-pip.py from ci-files.testing.ansible.com,
# which the build machines cannot reach; it reads the script from its cache when it is there.
pip_version=$("$bin/python" -c '
import pathlib, re, ansible_test
source = (pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py").read_text()
print(re.search(r"pip=.([0-9.]+).", source).group(1))')
cached=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ ! -f "$cached" ] || grep -q "Stand-in for pip's get-pip.py" "$cached"; then
  mkdir -p "$(dirname "$cached")"
  cp scripts/get_pip_standin.py "$cached"
fi

python_version=$("$bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cd "$tree"
# ansible-test tests the files git knows (without a repository it finds no targets at all).
git init -q && git add -A && git -c user.name=sanity -c user.email=sanity@localhost commit -qm sanity
start=$(date +%s)
"$bin/ansible-test" sanity --python "$python_version" --color no "$@"
echo "ansible-test sanity: passed in $(( $(date +%s) - start )) s"
