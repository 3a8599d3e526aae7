# shellcheck shell=bash
# A private nginx-rtmp for the benchmarks (sourced by bench-capture.sh and bench-stream.sh):
# the same ingest every side-by-side run publishes to, recording each publish to its own
# file. The sourcing script defines die(), a PIDS array its cleanup kills by pid, and
# MODULE (the path of ngx_rtmp_module.so). Only 127.0.0.1 is used.

# A free loopback port: random candidates, checked against the listening sockets.
free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        if [ -z "$(ss -Hltn "sport = :$p")" ]; then echo "$p"; return; fi
    done
    die "no free port"
}

# nginx_rtmp_start DIR: nginx-rtmp in DIR (logs in DIR/logs, every publish recorded as
# DIR/rec/KEY-UNIXSECONDS.flv) on 127.0.0.1:$PORT, a free port. Sets PORT and NGINX_PID
# (also added to PIDS); dies with nginx's log if it does not listen within 10 s.
nginx_rtmp_start() {
    local n=$1
    mkdir -p "$n/logs" "$n/rec"
    PORT=$(free_port)
    cat >"$n/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $n/logs/nginx.pid;
error_log $n/logs/error.log info;
load_module $MODULE;
events { worker_connections 64; }
rtmp {
    server {
        listen 127.0.0.1:$PORT;
        chunk_size 4096;
        application live {
            live on;
            record all;
            record_path $n/rec;
            record_unique on;
            record_append off;
        }
    }
}
CONF
    nginx -p "$n" -e "$n/logs/error.log" -c "$n/nginx.conf" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    for _ in $(seq 100); do
        if [ -n "$(ss -Hltn "sport = :$PORT")" ]; then return; fi
        kill -0 "$NGINX_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$n/logs/error.log" >&2 || true
    die "nginx did not start on 127.0.0.1:$PORT"
}
