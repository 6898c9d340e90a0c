#!/usr/bin/env bash
# configure/check-deps.sh -- finds what reloc needs (configure/debian-packages.txt) and, with --install (make deps,
# and so make test, run, bench, demo), installs the missing Debian packages, saying which and how on the terminal
# first. Libraries are found through pkg-config, python modules through
# /usr/bin/python3 (the python3 on PATH may be a bare interpreter without Debian's modules).
# Exit status: 0 when everything is present afterwards, 1 otherwise (with a message naming what is missing).
set -u
here=$(cd "$(dirname "$0")" && pwd)
install=no
[ "${1:-}" = "--install" ] && install=yes

missing_pkgs() {
    local kind pkg probe
    while read -r kind pkg probe; do
        case "$kind" in ''|'#'*) continue ;; esac
        case "$kind" in
            pkg)  pkg-config --exists "$probe" 2>/dev/null || echo "$pkg" ;;
            py)   /usr/bin/python3 -c "import $probe" >/dev/null 2>&1 || echo "$pkg" ;;
            bin)  command -v "$probe" >/dev/null 2>&1 || echo "$pkg" ;;
            file) [ -e "$probe" ] || ls $probe >/dev/null 2>&1 || echo "$pkg" ;;
        esac
    done < "$here/debian-packages.txt" | sort -u
}

missing=$(missing_pkgs | tr '\n' ' ')
[ -z "${missing// /}" ] && exit 0

if [ "$install" = yes ]; then
    if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
        echo "check-deps: missing Debian packages: $missing" >&2
        echo "check-deps: not root and no sudo: install them with: apt-get install $missing" >&2
        exit 1
    fi
    SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
    # Said on the terminal before anything is installed: 'make test' and 'make run' come here on their own.
    echo "check-deps: reloc needs Debian packages that are not installed: $missing" >&2
    echo "check-deps: installing them now: ${SUDO:+$SUDO }apt-get install -y --no-install-recommends $missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y --no-install-recommends $missing >/dev/null 2>&1; then
        echo "check-deps: not in the package lists yet: running ${SUDO:+$SUDO }apt-get update, then installing again" >&2
        if ! { $SUDO apt-get update >/dev/null 2>&1 &&
               $SUDO apt-get install -y --no-install-recommends $missing >/dev/null; }; then
            echo "check-deps: apt-get could not install: $missing" >&2
            exit 1
        fi
    fi
    echo "check-deps: installed: $missing" >&2
    missing=$(missing_pkgs | tr '\n' ' ')
    [ -z "${missing// /}" ] && exit 0
fi
echo "check-deps: missing Debian packages: $missing (run 'make deps' as root, or apt-get install them)" >&2
exit 1
