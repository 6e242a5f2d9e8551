"""``python -m ptrace_raw``: the same command line as ``ptrace-raw``."""

import sys

from .cli import main

sys.exit(main())
