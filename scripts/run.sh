#!/usr/bin/env bash
# `make run`: set up and start KubeDoor on embedded defaults (SQLite, a file broker, no ClickHouse).
#   web UI + API  http://127.0.0.1:8000      (gunicorn)
#   webhook       http://127.0.0.1:8001      (plain HTTP for local use)
#   worker+beat   celery, file broker under var/broker
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/system-deps.sh run
scripts/venv.sh requirements.txt
export PATH="$PWD/.venv/bin:$PATH"
PORT="${PORT:-8000}"
WEBHOOK_PORT="${WEBHOOK_PORT:-8001}"

python manage.py migrate --noinput
python manage.py collectstatic --noinput -v 0
python manage.py kubedoor_admin --username "${KUBEDOOR_ADMIN_USER:-admin}" --if-none
if [ "${DEMO:-0}" = "1" ]; then
  python manage.py kubedoor_demo
fi

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

mkdir -p var/log
# One malloc arena per 2 threads at most, as in the image (deploy/Dockerfile): less memory, same speed.
MALLOC_ARENA_MAX=2 celery -A kubedoor_site worker --beat --concurrency 2 --loglevel INFO --schedule var/celerybeat-schedule \
  > var/log/worker.log 2>&1 &
pids+=($!)
if [ -f apps/webhook/wsgi.py ]; then
  rm -rf var/prometheus && mkdir -p var/prometheus  # /metrics adds up the workers' counters kept here
  PROMETHEUS_MULTIPROC_DIR="$PWD/var/prometheus" KUBEDOOR_WEBHOOK_TLS_CERT="" KUBEDOOR_WEBHOOK_TLS_KEY="" \
    gunicorn -c python:apps.webhook.gunicorn_conf apps.webhook.wsgi:application \
    --bind "127.0.0.1:$WEBHOOK_PORT" --workers 2 > var/log/webhook.log 2>&1 &
  pids+=($!)
  echo "Admission webhook on http://127.0.0.1:$WEBHOOK_PORT/mutate/<cluster> (log: var/log/webhook.log)"
fi
echo "Celery worker with beat running (log: var/log/worker.log)"
echo "KubeDoor web UI on http://127.0.0.1:$PORT/admin/  (API: /api/v1/, docs: /api/docs/)"
gunicorn kubedoor_site.wsgi:application --bind "127.0.0.1:$PORT" --workers "${WEB_WORKERS:-2}" \
  --no-control-socket --access-logfile - &
pids+=($!)
wait "${pids[-1]}"
