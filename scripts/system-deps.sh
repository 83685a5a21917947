#!/usr/bin/env bash
# Install the Debian packages KubeDoor needs, only those missing, in one apt call.
#   scripts/system-deps.sh run    - what `make run` needs (headers to build python-ldap)
#   scripts/system-deps.sh test   - plus the real services the test suite starts
set -euo pipefail

want=(libldap2-dev libsasl2-dev)
if [ "${1:-run}" = "test" ]; then
  want+=(postgresql redis-server clickhouse-server clickhouse-client prometheus victoria-metrics slapd ldap-utils
         chromium chromium-driver wrk gettext fonts-wqy-microhei)
fi

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing system packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
