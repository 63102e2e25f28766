#!/usr/bin/env bash
# The whole suite in two pytest processes side by side: the tests that may start Ray (or a job)
# in one, in order, so that two local Ray instances never meet on this machine's fixed ports; the
# tests listed in tests/conftest.py's NO_RAY, which start neither, in the other. With arguments
# (a path, -k, -x...) it is one plain pytest run with them.
set -uo pipefail
PY=${PY:-python}
if [ $# -gt 0 ]; then
  exec "$PY" -m pytest "$@"
fi
mapfile -t NO_RAY < <("$PY" -c "from tests.conftest import NO_RAY; print('\n'.join(NO_RAY))")
ignore=()
for p in "${NO_RAY[@]}"; do ignore+=("--ignore=$p"); done
log=$(mktemp)
"$PY" -m pytest "${NO_RAY[@]}" > "$log" 2>&1 &
side=$!
"$PY" -m pytest --durations=20 "${ignore[@]}"
main=$?
wait "$side"
other=$?
echo
echo "== the tests that start neither Ray nor a job (run beside the others) =="
cat "$log"
rm -f "$log"
[ "$main" -eq 0 ] && [ "$other" -eq 0 ]
