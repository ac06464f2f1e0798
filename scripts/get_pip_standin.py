"""Stand-in for pip's get-pip.py bootstrap script, which ansible-test downloads from
ci-files.testing.ansible.com (not reachable from the build machines; ansible-test says to put the
script into its cache by hand). ansible-test runs it in a venv made without pip, with pip's
install arguments: ensurepip puts the bundled pip in, which then installs the pinned pip from the
package index."""

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

if __name__ == "__main__":
    environment = dict(os.environ)  # ensurepip hides pip's configuration (the index, its CA) from here on
    ensurepip.bootstrap()
    sys.exit(subprocess.call([sys.executable, "-m", "pip", "install",
                              *(arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY)], env=environment))
