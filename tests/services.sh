#!/usr/bin/env bash
# Makes sure the PostgreSQL and Redis the tests use are reachable: starts them when they are installed but
# stopped, and says clearly what is missing otherwise. Override with TEST_DATABASE_URL / TEST_REDIS_URL.
set -u
pg_host=127.0.0.1; pg_port=5432; redis_host=127.0.0.1; redis_port=6379

reachable() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_for() { for _ in $(seq 1 30); do reachable "$1" "$2" && return 0; sleep 0.5; done; return 1; }

if [ -z "${TEST_DATABASE_URL:-}" ] && ! reachable $pg_host $pg_port; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is stopped: starting it"
    for version in $(ls /etc/postgresql); do pg_ctlcluster --skip-systemctl-redirect "$version" main start || true; done
    wait_for $pg_host $pg_port || { echo "PostgreSQL did not come up on $pg_host:$pg_port" >&2; exit 1; }
  else
    echo "PostgreSQL is not reachable on $pg_host:$pg_port and not installed here." >&2
    echo "Install it (apt-get install postgresql) or set TEST_DATABASE_URL to a server with trust auth." >&2
    exit 1
  fi
fi

if [ -z "${TEST_REDIS_URL:-}" ] && ! reachable $redis_host $redis_port; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "Redis is stopped: starting it"
    redis-server --daemonize yes --bind 127.0.0.1 --port $redis_port --save "" --appendonly no >/dev/null
    wait_for $redis_host $redis_port || { echo "Redis did not come up on $redis_host:$redis_port" >&2; exit 1; }
  else
    echo "Redis is not reachable on $redis_host:$redis_port and not installed here." >&2
    echo "Install it (apt-get install redis-server) or set TEST_REDIS_URL." >&2
    exit 1
  fi
fi
echo "PostgreSQL and Redis are reachable"

# The console's browser tests drive Debian's chromium; the FusionPBX app's tests run php-cli. Installed when
# missing and apt-get can (root); otherwise those tests skip and say what they need.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v php >/dev/null 2>&1 || missing+=(php-cli)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${missing[*]} for the console and FusionPBX app tests"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
      >/dev/null 2>&1 || echo "Could not install ${missing[*]}: the tests that need them will skip" >&2
  else
    echo "Missing ${missing[*]} (apt-get install ${missing[*]} as root): the tests that need them will skip" >&2
  fi
fi
