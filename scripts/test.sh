#!/usr/bin/env bash
# `make test`: install what the tests need, start missing services, lint, check, and run pytest.
# The suite itself starts ClickHouse, Prometheus, slapd, Celery workers and Chromium on loopback
# ports of their own and stops them; this script starts PostgreSQL and Redis when they are down
# and stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
started=()
cleanup() {
  for svc in "${started[@]}"; do
    case "$svc" in
      postgresql) pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main stop || true ;;
      redis) redis-cli -h 127.0.0.1 -p 6379 shutdown nosave >/dev/null 2>&1 || true ;;
    esac
  done
}
trap cleanup EXIT

t0=$(date +%s)
scripts/system-deps.sh test
scripts/venv.sh requirements-dev.txt
export PATH="$PWD/.venv/bin:$PATH"

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "Starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  started+=(postgresql)
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "Starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  started+=(redis)
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi

# The database named in DATABASE_URL must exist for `makemigrations --check`; tests use test_<name>.
if [ -z "${TEST_DATABASE_URL:-}" ] && ! psql -h 127.0.0.1 -U postgres -Atc "SELECT 1 FROM pg_database WHERE datname='kubedoor'" | grep -q 1; then
  createdb -h 127.0.0.1 -U postgres kubedoor
fi
export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/kubedoor}"
export CELERY_BROKER_URL="${TEST_CELERY_BROKER_URL:-redis://127.0.0.1:6379/15}"
export KUBEDOOR_VAR_DIR="$PWD/var/test"

# Every check runs even when an earlier one fails, so one run shows every problem.
failed=()
step() {
  local name="$1"; shift
  echo "== $name"
  "$@" || failed+=("$name")
}
step "ruff check" ruff check .
step "ruff format --check" ruff format --check .
step "manage.py check" python manage.py check
step "makemigrations --check" python manage.py makemigrations --check --dry-run
step "mypy" mypy apps kubedoor_site
step "pytest" python -m pytest "$@"
echo "make test: $(( $(date +%s) - t0 )) s wall"
if [ ${#failed[@]} -gt 0 ]; then
  echo "make test FAILED: ${failed[*]}"
  exit 1
fi
