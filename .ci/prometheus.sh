#!/bin/sh
# Prometheus and promtool for the observability tests (tests/ops/test_prometheus*.py):
# Debian's `prometheus` package, installed only when promtool is not on PATH.
# The tests run the binary themselves on loopback; the package's own service is
# never started (a policy-rc.d that refuses every start, for the install only).
set -eu
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "promtool is missing and this is not a Debian system: install Prometheus (promtool" >&2
    echo "and prometheus on PATH) and run make test again." >&2
    exit 1
fi
policy=/usr/sbin/policy-rc.d
created=
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    created=1
fi
status=0
{
    $SUDO apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus
} || status=$?
if [ -n "$created" ]; then
    $SUDO rm -f "$policy"
fi
exit "$status"
