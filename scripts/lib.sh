# Shared by scripts/test and scripts/build: finding a Python and keeping the two venvs up to date.
# Source it; it defines functions and ROOT, and runs nothing else.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() {
    echo "error: $*" >&2
    exit 1
}

# A pyenv shim exists for every installed version but fails unless that version is selected,
# so a candidate counts only if it actually runs.
_runs() {
    "$1" -c 'import sys' >/dev/null 2>&1
}

# Prints the path of a working python3.MINOR (on PATH, else under pyenv), or fails.
python_exact() {
    local minor="$1" candidate
    if command -v "python3.$minor" >/dev/null && _runs "python3.$minor"; then
        command -v "python3.$minor"
        return 0
    fi
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3."$minor".*/bin/python3."$minor"; do
        if [[ -x "$candidate" ]] && _runs "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# Prints a Python >= 3.12 for the venvs, preferring 3.13 (the Lambda runtime).
python_for_tests() {
    python_exact 13 && return 0
    python_exact 12 && return 0
    if command -v python3 >/dev/null && python3 -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        command -v python3
        return 0
    fi
    die "Python 3.12 or newer is needed (3.13 preferred): put python3.13 or python3.12 on PATH"
}

# ensure_venv DIR PYTHON REQUIREMENTS [MORE_FILES...]
# (Re)creates DIR with PYTHON and installs REQUIREMENTS, unless a stamp inside DIR shows that
# the same Python and the same requirement files were installed last time (venv_is_current).
ensure_venv() {
    local dir="$1" python="$2" requirements="$3"
    shift 3
    if venv_is_current "$dir" "$python" "$requirements" "$@"; then
        return 0
    fi
    echo "setting up $dir with $("$python" --version 2>&1) from $requirements" >&2
    "$python" -m venv --clear "$dir"
    "$dir/bin/python" -m pip install -q -r "$requirements"
    _venv_stamp "$python" "$requirements" "$@" >"$dir/.requirements.sha256"
}

# venv_is_current DIR PYTHON REQUIREMENTS [MORE_FILES...]: whether ensure_venv would leave DIR as it is.
venv_is_current() {
    local dir="$1" stamp="$1/.requirements.sha256"
    shift
    [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$(_venv_stamp "$@")" ]]
}

_venv_stamp() {
    local python="$1"
    shift
    ( ("$python" --version 2>&1; echo "$python"; cat "$@") | sha256sum | cut -d' ' -f1)
}
