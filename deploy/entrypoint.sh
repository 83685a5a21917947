#!/bin/sh
# Entrypoint of the KubeDoor image (deploy/Dockerfile): refuse to start while a secret setting still
# holds the CHANGE-ME placeholder of deploy/base/secret.env.example, then run the given command
# (gunicorn, celery or manage.py, from the Deployment's `args`).
set -eu
for name in KUBEDOOR_SECRET_KEY DATABASE_URL CELERY_BROKER_URL CLICKHOUSE_URL AUTH_LDAP_BIND_PASSWORD \
  KUBEDOOR_ADMIN_PASSWORD; do
  eval "value=\${$name:-}"
  case "$value" in
    *CHANGE-ME*)
      echo "kubedoor: $name still holds the CHANGE-ME placeholder; create the Secret from secret.env" \
        "(deploy/README.md, 'Create the secret') before starting KubeDoor." >&2
      exit 78
      ;;
  esac
done
if [ "$#" -eq 0 ]; then
  echo "kubedoor: no command given (expected gunicorn, celery or python manage.py ...)" >&2
  exit 64
fi
exec "$@"
