#!/usr/bin/env bash
# Set-up and entry point for the two README commands:
#   ./run.sh demo    build the bundled demo program and trace it
#   ./run.sh test    run the test suite
# Each step installs what it needs: a venv with the Python dependencies, and
# gcc, 32-bit multilib and <sys/sdt.h> through apt-get when they are missing
# and apt is usable; otherwise it stops and says what to install.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${PTRACE_RAW_VENV:-.venv}

die() { echo "run.sh: $*" >&2; exit 1; }

apt_install() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null && sudo -n true 2>/dev/null && sudo="sudo -n" || return 1
    fi
    command -v apt-get >/dev/null || return 1
    $sudo apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

need_toolchain() {
    local probe missing=()
    probe=$(mktemp -d)
    printf '#include <sys/sdt.h>\nint main(void){DTRACE_PROBE(demo, start);return 0;}\n' > "$probe/t.c"
    # <sys/sdt.h> is in the x86_64 include directory only (the tests add it
    # for -m32 builds), so the 32-bit probe is a plain program.
    printf 'int main(void){return 0;}\n' > "$probe/plain.c"
    command -v gcc >/dev/null || missing+=(gcc)
    command -v python3 >/dev/null || missing+=(python3)
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    if command -v gcc >/dev/null; then
        gcc -m32 -o "$probe/t32" "$probe/plain.c" 2>/dev/null || missing+=(gcc-multilib)
        gcc -o "$probe/t64" "$probe/t.c" 2>/dev/null || missing+=(systemtap-sdt-dev)
    fi
    rm -rf "$probe"
    # Optional tools a few tests use (strace counts the tracer's system
    # calls, dwz makes the shared DWARF of Debian's debug files): each is
    # tried once, not on every run of a machine that cannot install it.
    for tool in strace dwz; do
        if ! command -v "$tool" >/dev/null && [ ! -e "$VENV/.no-$tool" ]; then
            apt_install "$tool" || { mkdir -p "$VENV" && touch "$VENV/.no-$tool"; }
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt_install gcc gcc-multilib systemtap-sdt-dev python3-venv \
            || die "missing: ${missing[*]}; install them (Debian: apt-get install gcc gcc-multilib systemtap-sdt-dev python3-venv)"
    fi
}

need_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV" || die "cannot create a venv in $VENV"
    fi
    if [ ! -f "$VENV/.installed" ] || [ setup.cfg -nt "$VENV/.installed" ]; then
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$VENV/bin/python" -m pip install -q -e '.[test]' || die "pip install failed"
        touch "$VENV/.installed"
    fi
}

case "${1:-}" in
    demo) need_toolchain; need_venv; shift; exec "$VENV/bin/ptrace-raw" demo "$@" ;;
    test) need_toolchain; need_venv; shift; exec "$VENV/bin/python" -m pytest -q "$@" ;;
    *) die "usage: ./run.sh demo | ./run.sh test [pytest args]" ;;
esac
