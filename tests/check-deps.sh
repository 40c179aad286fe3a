#!/bin/sh
# check-deps.sh - the daemon's modules include each other one way only.
#
# Reads the #include "x.h" lines of src/*.[ch] (a module is x.c with x.h)
# and checks each against the layers below, as docs/ARCHITECTURE.md lists
# them: a module may include modules of a lower layer only (never its own
# layer, never a higher one), so the graph can have no cycle. A module
# missing from the table is an error too: a new file says where it stands.
# Prints the graph with -v. Exit 0, or 1 naming each offending include.
set -eu
srcdir=${srcdir:-$(dirname "$0")/..}
verbose=false
[ "${1-}" = "-v" ] && verbose=true

# layer module...: 0 = the leaf, 10 = main. recyclerctl is another program
# that shares the leaves and the configuration parser.
layers='
0 util
1 heap pidmap units log logring memprobe growth policy spawn
2 events config notify recyclerd
3 cgroup listen diag output guard spawner
4 orphans
5 worker
6 children
7 pool
8 metrics
9 control
10 main recyclerctl
'

# A module in more than one file: template.c is the pool module's second
# file (spawn = template edits struct pool's template state and calls
# pool.c's internal functions, declared for it in pool.h).
module() {
	case $1 in
	template) echo pool ;;
	*) echo "$1" ;;
	esac
}

for f in "$srcdir"/src/*.c "$srcdir"/src/*.h; do
	m=$(basename "$f"); m=$(module "${m%.[ch]}")
	sed -n 's/^#include "\([a-z_]*\)\.h".*/\1/p' "$f" |
	while read -r dep; do
		dep=$(module "$dep")
		[ "$dep" = "$m" ] || echo "$m $dep"
	done
done | sort -u | awk -v layers="$layers" -v verbose="$verbose" '
BEGIN {
	n = split(layers, lines, "\n")
	for (i = 1; i <= n; i++) {
		k = split(lines[i], f, " ")
		for (j = 2; j <= k; j++)
			layer[f[j]] = f[1]
	}
}
{
	deps[$1] = deps[$1] " " $2
	for (i = 1; i <= 2; i++)
		if (!($i in layer) && !($i in told)) {
			printf "check-deps: module %s is in no layer: add it to " \
			    "tests/check-deps.sh and docs/ARCHITECTURE.md\n", $i
			told[$i] = 1
			bad++
		}
	if (($1 in layer) && ($2 in layer) && layer[$2] + 0 >= layer[$1] + 0) {
		printf "check-deps: %s (layer %d) includes %s (layer %d): " \
		    "dependencies point down only\n", $1, layer[$1], $2, layer[$2]
		bad++
	}
}
END {
	if (verbose == "true")
		for (m in deps)
			printf "%d %s ->%s\n", layer[m], m, deps[m] | "sort -n"
	close("sort -n")
	if (bad) {
		printf "check-deps: %d problem(s)\n", bad
		exit 1
	}
	print "check-deps: include graph follows the layers, no cycle"
}'
