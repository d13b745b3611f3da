"""Stand-in for ansible-test's get-pip bootstrap script.

ansible-test creates its per-test virtual environments without pip and downloads get-pip.py
from a host that lab CI machines cannot reach. This script does the same job from what is
here: pip's wheel bundled with the interpreter (ensurepip), then `pip install` of the exact
version ansible-test asked for, from the package index.
"""
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap()
# ensurepip isolates itself by pointing PIP_CONFIG_FILE at /dev/null; the real install below must
# see the machine's pip configuration (index, CA bundle, proxy) again.
os.environ.pop("PIP_CONFIG_FILE", None)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]))
