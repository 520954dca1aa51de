#!/bin/sh
# with-pg.sh PG_LOCAL TEST [ARGS...]: run a storage test against the database
# in SWITCHBOARD_TEST_DB, or, when it is unset, against a private PostgreSQL
# cluster started for this test in a temporary directory (tools/pg-local),
# stopped and removed afterwards. SWITCHBOARD_TEST_WRAPPER (e.g. a valgrind
# command line) runs the test under that tool.
set -eu
pglocal=$1
shift
export SWITCHBOARD_PG_LOCAL="$pglocal"
wrapper=${SWITCHBOARD_TEST_WRAPPER:-}
if [ -n "${SWITCHBOARD_TEST_DB:-}" ]; then
    exec $wrapper "$@"
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/sb-storage-test.XXXXXX")
cleanup() {
    "$pglocal" stop "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
if ! SWITCHBOARD_TEST_DB=$("$pglocal" start "$dir" 2>"$dir.err"); then
    echo "Bail out! cannot start a private PostgreSQL: $(tail -n 3 "$dir.err" | tr '\n' ' ')"
    rm -f "$dir.err"
    exit 1
fi
rm -f "$dir.err"
export SWITCHBOARD_TEST_DB
rc=0
$wrapper "$@" || rc=$?
exit $rc
