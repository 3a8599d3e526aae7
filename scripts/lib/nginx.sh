# shellcheck shell=bash
# A private nginx-rtmp for the benchmarks (sourced by bench-capture.sh, bench-stream.sh and
# bench-tls.sh): the same ingest every side-by-side run publishes to, recording each publish
# to its own file, optionally behind a TLS front (RTMPS). The sourcing script defines die(),
# a PIDS array its cleanup kills by pid, and MODULE (the path of ngx_rtmp_module.so); for
# the TLS front also STREAM_MODULE (ngx_stream_module.so). Only 127.0.0.1 is used.

# A free loopback port: random candidates, checked against the listening sockets.
free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        if [ -z "$(ss -Hltn "sport = :$p")" ]; then echo "$p"; return; fi
    done
    die "no free port"
}

# nginx_rtmp_start DIR [CERT KEY]: nginx-rtmp in DIR (logs in DIR/logs, every publish
# recorded as DIR/rec/KEY-UNIXSECONDS.flv) on 127.0.0.1:$PORT, a free port; with CERT and
# KEY (PEM files), also a TLS front (nginx's stream module, OpenSSL) on 127.0.0.1:$TLS_PORT
# that passes the decrypted bytes to it. Sets PORT, TLS_PORT (empty without TLS) and
# NGINX_PID (also added to PIDS); dies with nginx's log if it does not listen within 10 s.
nginx_rtmp_start() {
    local n=$1 cert=${2:-} key=${3:-} tls_module="" tls_front="" ready
    mkdir -p "$n/logs" "$n/rec"
    PORT=$(free_port)
    TLS_PORT=""
    if [ -n "$cert" ]; then
        TLS_PORT=$(free_port)
        [ "$TLS_PORT" != "$PORT" ] || TLS_PORT=$(free_port)
        tls_module="load_module $STREAM_MODULE;"
        tls_front="stream {
    server {
        listen 127.0.0.1:$TLS_PORT ssl;
        ssl_certificate $cert;
        ssl_certificate_key $key;
        proxy_pass 127.0.0.1:$PORT;
    }
}"
    fi
    cat >"$n/nginx.conf" <<CONF
$tls_module
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
$tls_front
CONF
    nginx -p "$n" -e "$n/logs/error.log" -c "$n/nginx.conf" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    ready=$PORT
    [ -z "$TLS_PORT" ] || ready=$TLS_PORT
    for _ in $(seq 100); do
        if [ -n "$(ss -Hltn "sport = :$PORT")" ] && [ -n "$(ss -Hltn "sport = :$ready")" ]; then return; fi
        kill -0 "$NGINX_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$n/logs/error.log" >&2 || true
    die "nginx did not start on 127.0.0.1:$PORT"
}
