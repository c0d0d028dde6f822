#!/usr/bin/env bash
# The editor on every core of one machine: one app process (replica) per core behind nginx, each browser kept
# on its replica by a cookie.
#
# One process does not scale with cores: Gradio's queue, HTTP and encoding run under one interpreter lock, so
# a second core adds 13-29% to slider throughput, while one replica per core doubles it
# (benchmarks/bench_cores.py, docs/app.md "Serving on several cores"). The replicas share the library through
# PostgreSQL (docs/app.md "Deployment: several replicas"); each keeps its sessions in memory, so nginx sends
# a browser's requests to the replica that served its first page: the first response sets a cookie
# (editgan_replica) with a random key, and the upstream is chosen by a consistent hash of it.
#
# Usage:
#   EDITGAN_DATABASE_URL=postgresql+psycopg://user:pw@host/db bash scripts/serve_replicas.sh [app.py options]
# Knobs: REPLICAS (default: the cores this process may use), PORT (7860, nginx), FIRST_PORT (PORT+1: the
#        replicas listen on FIRST_PORT..FIRST_PORT+REPLICAS-1 on 127.0.0.1), HOST (nginx's address, 127.0.0.1),
#        NGINX (nginx), RUN_DIR (a fresh temporary folder: nginx's config and logs, the replicas' logs).
# Each replica gets one core (taskset), one torch thread and its own data directory ($EDITGAN_DATA_DIR/replica-N,
# default ./data/replica-N). Ctrl-C (or SIGTERM) stops nginx and every replica.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
REPLICAS=${REPLICAS:-$(nproc)}
PORT=${PORT:-7860}
FIRST_PORT=${FIRST_PORT:-$((PORT + 1))}
HOST=${HOST:-127.0.0.1}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
DATA=${EDITGAN_DATA_DIR:-data}
case "$REPLICAS" in ''|*[!0-9]*|0) echo "REPLICAS must be a whole number >= 1, got '$REPLICAS'" >&2; exit 2 ;; esac
if [ "$REPLICAS" -gt 1 ] && [[ "${EDITGAN_DATABASE_URL:-}" != postgresql* ]]; then
  echo "several replicas share the library through PostgreSQL: set EDITGAN_DATABASE_URL=postgresql+psycopg://..." \
       "(SQLite is for one process; REPLICAS=1 runs one)" >&2
  exit 2
fi
command -v "$NGINX" >/dev/null || { echo "nginx not found (apt-get install nginx-light, or set NGINX)" >&2; exit 2; }
mapfile -t CORES < <(taskset -pc $$ | sed 's/.*: //' | tr ',' '\n' |
  awk -F- '{ if ($2 == "") print $1; else for (i = $1; i <= $2; i++) print i }')
RUN_DIR=${RUN_DIR:-$(mktemp -d /tmp/editgan-replicas.XXXXXX)}
mkdir -p "$RUN_DIR"

pids=()
stop() {
  trap - EXIT INT TERM
  [ -f "$RUN_DIR/nginx.pid" ] && kill "$(cat "$RUN_DIR/nginx.pid")" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

servers=""
for ((i = 0; i < REPLICAS; i++)); do
  core=${CORES[$((i % ${#CORES[@]}))]}
  port=$((FIRST_PORT + i))
  mkdir -p "$DATA/replica-$i"
  EDITGAN_DATA_DIR="$DATA/replica-$i" EDITGAN_TORCH_THREADS=1 \
    taskset -c "$core" "$PY" app.py --host 127.0.0.1 --port "$port" "$@" >"$RUN_DIR/replica-$i.log" 2>&1 &
  pids+=($!)
  servers+="    server 127.0.0.1:$port;"$'\n'
done

cat >"$RUN_DIR/nginx.conf" <<EOF
worker_processes 1;
pid $RUN_DIR/nginx.pid;
error_log $RUN_DIR/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $RUN_DIR/body;
  proxy_temp_path $RUN_DIR/proxy;
  fastcgi_temp_path $RUN_DIR/fastcgi;
  uwsgi_temp_path $RUN_DIR/uwsgi;
  scgi_temp_path $RUN_DIR/scgi;
  client_max_body_size 100m;           # the app's own upload limit (app/ui.py max_file_size)
  # a browser without the cookie gets a fresh random key; with it, its replica's
  map \$cookie_editgan_replica \$replica_key { "" \$request_id; default \$cookie_editgan_replica; }
  map \$http_upgrade \$connection_upgrade { default upgrade; "" ""; }
  upstream editgan {
    hash \$replica_key consistent;
$servers  }
  server {
    listen $HOST:$PORT;
    location / {
      proxy_pass http://editgan;
      proxy_http_version 1.1;
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_buffering off;               # the queue's event stream must reach the browser as it is sent
      proxy_read_timeout 3600s;
      add_header Set-Cookie "editgan_replica=\$replica_key; Path=/; SameSite=Lax; HttpOnly" always;
      add_header X-EditGAN-Replica \$upstream_addr always;  # which replica answered (for operators and tests)
    }
  }
}
EOF

echo "waiting for $REPLICAS replicas (logs in $RUN_DIR)"
for ((i = 0; i < REPLICAS; i++)); do
  port=$((FIRST_PORT + i))
  until curl -sf -o /dev/null "http://127.0.0.1:$port/"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "replica $i exited; its log:" >&2
      tail -n 30 "$RUN_DIR/replica-$i.log" >&2
      exit 1
    fi
    sleep 0.5
  done
done
"$NGINX" -c "$RUN_DIR/nginx.conf" -g "daemon off;" &
pids+=($!)
echo "serving on http://$HOST:$PORT/ ($REPLICAS replicas on cores ${CORES[*]:0:$REPLICAS})"
wait -n "${pids[@]}"
echo "a replica or nginx stopped; stopping the rest" >&2
exit 1
