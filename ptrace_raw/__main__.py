"""``python -m ptrace_raw`` and the ``ptrace-raw`` command."""

import sys

from .held_signals import HeldSignals


def run() -> None:
    held = HeldSignals()  # before the tracer's modules load (see held_signals)
    from .cli import main
    sys.exit(main(held=held))


if __name__ == "__main__":
    run()
