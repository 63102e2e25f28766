#!/usr/bin/env bash
# The whole suite in pytest processes side by side: the tests that may start Ray (or a job) in
# the process that may hold Ray itself, in order, so that two local Ray instances of this process
# never meet; beside it, one after the other, the tests listed in tests/conftest.py's NO_RAY (they
# start neither) and those in OWN_RAY (their Ray runs in processes of their own at explicit
# addresses). With arguments (a path, -k, -x...) it is one plain pytest run with them.
set -uo pipefail
PY=${PY:-python}
if [ $# -gt 0 ]; then
  exec "$PY" -m pytest "$@"
fi
mapfile -t NO_RAY < <("$PY" -c "from tests.conftest import NO_RAY; print('\n'.join(NO_RAY))")
mapfile -t OWN_RAY < <("$PY" -c "from tests.conftest import OWN_RAY; print('\n'.join(OWN_RAY))")
ignore=()
for p in "${NO_RAY[@]}" "${OWN_RAY[@]}"; do ignore+=("--ignore=$p"); done
log=$(mktemp)
(
  "$PY" -m pytest "${NO_RAY[@]}"
  first=$?
  "$PY" -m pytest --durations=5 "${OWN_RAY[@]}"
  second=$?
  [ "$first" -eq 0 ] && [ "$second" -eq 0 ]
) > "$log" 2>&1 &
side=$!
"$PY" -m pytest --durations=20 "${ignore[@]}"
main=$?
wait "$side"
other=$?
echo
echo "== beside them: the tests that start neither Ray nor a job, then those whose Ray is their own =="
cat "$log"
rm -f "$log"
[ "$main" -eq 0 ] && [ "$other" -eq 0 ]
