# Sourced by test/unit/run*.sh: what building and running a unit test
# outside PostgreSQL takes.  Sets here, root and tmp (removed on exit).
#   unit_build PROG SOURCE... [-lLIB...]  compile $tmp/PROG with src/ on the include path
#   unit_run PROG [ARG...]                run it; under valgrind --leak-check=full when VALGRIND=1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CC=${CC:-gcc}
CFLAGS=${CFLAGS:-"-std=gnu11 -Wall -Wextra -Werror -O2 -g"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

unit_build() {
	prog=$1
	shift
	# shellcheck disable=SC2086
	$CC $CFLAGS -I"$root/src" -o "$tmp/$prog" "$@"
}

unit_run() {
	prog=$1
	shift
	if [ "${VALGRIND:-0}" = 1 ]; then
		valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible \
			--errors-for-leak-kinds=definite,indirect,possible \
			--error-exitcode=1 "$tmp/$prog" "$@"
	else
		"$tmp/$prog" "$@"
	fi
}
