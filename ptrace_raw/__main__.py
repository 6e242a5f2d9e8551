"""``python -m ptrace_raw`` and the ``ptrace-raw`` command."""

import sys


def run() -> None:
    try:
        from .held_signals import HeldSignals
        held = HeldSignals()  # before the tracer's modules load (see held_signals)
    except KeyboardInterrupt:
        # Ctrl-C before the hold, while the first modules load: nothing
        # is traced yet, and it ends us as one during set-up does, with no
        # traceback.  (One in the interpreter's own start-up, before this
        # file runs, is Python's to report.)
        sys.exit(128 + 2)  # SIGINT
    from .cli import main
    sys.exit(main(held=held))


if __name__ == "__main__":
    run()
