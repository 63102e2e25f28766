#!/bin/sh
# Run a command in a private network namespace with only loopback up, so that the Ray and MLflow
# processes the tests start can listen on loopback alone. Falls back, saying so, where the
# platform does not allow unprivileged namespaces.
if command -v unshare >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 \
    && unshare -rn sh -c 'ip link set lo up' >/dev/null 2>&1; then
    echo "running in a private network namespace (loopback only)"
    exec unshare -rn sh -c 'ip link set lo up && exec "$@"' sh "$@"
fi
echo "private network namespace unavailable (unshare -rn or ip missing or refused); running on the host network"
exec "$@"
