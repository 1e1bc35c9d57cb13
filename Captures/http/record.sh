#!/usr/bin/env bash
# Re-record the HTTP golden captures in this directory.
#
#   sudo Captures/http/record.sh              # all scenarios
#   sudo Captures/http/record.sh simple-get   # only the named scenario(s)
#
# Servers, each started from a private, throwaway config in a scratch dir (the system
# configs in /etc are not touched, and the daemons are stopped on exit):
#   nginx (Debian nginx-light) on 127.0.0.1:8080, with gzip, auth_basic and a proxy to lighttpd
#   lighttpd on 127.0.0.1:8000 with a CGI script (echo and streamed responses)
# Clients: curl, wrk, and rawclient.py (next to this script) for pipelining and a chunked
# request with a trailer. lighttpd answers an HTTP/1.0 client's CGI request with a
# close-delimited body (no Content-Length, ends at FIN).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${WIREBEAT_HTTP_WORK:-/var/tmp/wirebeat-http-rec}"
NGINX_PORT=8080
LIGHTTPD_PORT=8000

if [[ $EUID -ne 0 ]]; then
    echo "run as root (sudo $0)" >&2
    exit 1
fi

# --- 1. packages -----------------------------------------------------------
source "$HERE/../../scripts/install-packages.sh"
install_packages nginx-light lighttpd apache2-utils curl wrk tcpdump tshark python3 iproute2

for port in $NGINX_PORT $LIGHTTPD_PORT; do
    if ss -ltnH "( sport = :$port )" | grep -q .; then
        echo "port $port is busy:" >&2
        ss -ltnp "( sport = :$port )" >&2
        exit 1
    fi
done

# --- 2. throwaway server configs and content ---------------------------------
rm -rf "$WORK"
mkdir -p "$WORK"/{www,cgi-bin,nginx/tmp,lighttpd}
chmod 755 "$WORK"

cat >"$WORK/www/index.html" <<'EOF'
<!DOCTYPE html>
<html>
<head><title>Wirebeat test page</title></head>
<body>
<h1>Wirebeat</h1>
<p>A small page served by a real web server on loopback, for the HTTP plugin's corpus.</p>
</body>
</html>
EOF
printf 'small text file\n' >"$WORK/www/small.txt"
# ~6 KB of text that nginx compresses on the fly (chunked, no Content-Length).
python3 -c 'import sys; sys.stdout.write("".join("/* rule %04d */ .wirebeat-%d { margin: %dpx; padding: 0 }\n" % (i, i, i % 17) for i in range(100)))' >"$WORK/www/style.css"
# 200 KiB of deterministic bytes.
python3 -c 'import sys, hashlib; sys.stdout.buffer.write(b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(6400)))' >"$WORK/www/large.bin"
mkdir -p "$WORK/www/private"
printf 'secret area\n' >"$WORK/www/private/index.html"
# Fixed mtimes: stable ETag / Last-Modified for the 304 scenario.
find "$WORK/www" -type f -exec touch -d '2024-01-02 03:04:05 UTC' {} +
htpasswd -bc "$WORK/htpasswd" alice 's3cret-Passw0rd' 2>/dev/null
chmod -R a+rX "$WORK/www" "$WORK/htpasswd"

cat >"$WORK/cgi-bin/echo.sh" <<'EOF'
#!/bin/sh
# Echo the request body back; no Content-Length, so the server frames the response itself.
printf 'Content-Type: text/plain\r\n\r\n'
printf 'method=%s length=%s\n' "$REQUEST_METHOD" "${CONTENT_LENGTH:-}"
cat
EOF
cat >"$WORK/cgi-bin/stream.sh" <<'EOF'
#!/bin/sh
# A response written in pieces over time: lighttpd streams it chunked to HTTP/1.1 clients.
printf 'Content-Type: text/plain\r\n\r\n'
for i in 1 2 3 4 5; do
    printf 'piece %s of a streamed CGI response\n' "$i"
    sleep 0.05
done
EOF
chmod 755 "$WORK"/cgi-bin/*.sh

cat >"$WORK/nginx.conf" <<EOF
# Throwaway nginx config for recording Wirebeat HTTP captures. Not for production.
worker_processes 1;
user www-data;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
daemon on;
events { worker_connections 64; }
http {
    access_log $WORK/nginx/access.log;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    types { text/html html; text/plain txt; text/css css; application/octet-stream bin; }
    default_type application/octet-stream;
    server_tokens on;
    keepalive_requests 100;
    gzip on;
    gzip_types text/css;
    gzip_min_length 256;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        server_name localhost;
        root $WORK/www;
        location /private/ {
            auth_basic "Wirebeat private";
            auth_basic_user_file $WORK/htpasswd;
        }
        location /echo {
            # nginx reads the body itself (answering Expect: 100-continue), then proxies.
            proxy_pass http://127.0.0.1:$LIGHTTPD_PORT/cgi-bin/echo.sh;
        }
    }
}
EOF

cat >"$WORK/lighttpd.conf" <<EOF
# Throwaway lighttpd config for recording Wirebeat HTTP captures. Not for production.
server.modules = ("mod_cgi", "mod_alias")
server.bind = "127.0.0.1"
server.port = $LIGHTTPD_PORT
server.document-root = "$WORK/www"
server.pid-file = "$WORK/lighttpd/lighttpd.pid"
server.errorlog = "$WORK/lighttpd/error.log"
server.username = "www-data"
server.groupname = "www-data"
server.stream-response-body = 2
alias.url = ("/cgi-bin/" => "$WORK/cgi-bin/")
cgi.assign = (".sh" => "/bin/sh")
mimetype.assign = (".html" => "text/html", ".txt" => "text/plain")
EOF
chown -R www-data:www-data "$WORK/lighttpd" "$WORK/nginx"

cleanup() {
    [[ -f "$WORK/nginx/nginx.pid" ]] && kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
    [[ -f "$WORK/lighttpd/lighttpd.pid" ]] && kill "$(cat "$WORK/lighttpd/lighttpd.pid")" 2>/dev/null || true
}
trap cleanup EXIT

nginx -p "$WORK/nginx" -c "$WORK/nginx.conf"
lighttpd -f "$WORK/lighttpd.conf"
sleep 1

# --- 3. scenarios --------------------------------------------------------------
N="http://127.0.0.1:$NGINX_PORT"
L="http://127.0.0.1:$LIGHTTPD_PORT"
CURL=(curl -sS -o /dev/null -A "curl/wirebeat")

# record NAME PORT COMMAND...: capture loopback traffic on PORT while COMMAND runs.
record() {
    local name=$1 port=$2
    shift 2
    local out="$HERE/$name.pcap"
    tcpdump -i lo -w "$out" -U -s 0 "tcp port $port" 2>/dev/null &
    local dump=$!
    sleep 1
    "$@"
    sleep 1
    kill "$dump"
    wait "$dump" 2>/dev/null || true
    chmod 644 "$out"
    echo "recorded $name.pcap ($(stat -c %s "$out") bytes)"
}

selected() { [[ ${#only[@]} -eq 0 ]] || [[ " ${only[*]} " == *" $1 "* ]]; }
only=("$@")

scenario_keepalive() {
    "${CURL[@]}" "$N/index.html" -o /dev/null "$N/small.txt" -o /dev/null "$N/index.html?lang=en&v=2"
}
scenario_304() {
    local etag
    etag=$(curl -sI "$N/index.html" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
    "${CURL[@]}" -H "If-None-Match: $etag" "$N/index.html"
    "${CURL[@]}" -H 'If-Modified-Since: Tue, 02 Jan 2024 03:04:05 GMT' "$N/small.txt"
}
scenario_post_100() {
    head -c 2000 /dev/zero | tr '\0' 'a' >"$WORK/post-body.txt"
    "${CURL[@]}" -H 'Expect: 100-continue' -H 'Content-Type: text/plain' --data-binary @"$WORK/post-body.txt" "$N/echo"
}
scenario_auth() {
    "${CURL[@]}" "$N/private/"
    "${CURL[@]}" -u 'alice:s3cret-Passw0rd' "$N/private/"
}
scenario_wrk() {
    cat >"$WORK/five.lua" <<'EOF'
-- Five distinct requests on one keep-alive connection, then stop: a tiny burst.
local sent, responses = 0, 0
function request()
    sent = sent + 1
    return wrk.format("GET", "/small.txt?n=" .. sent)
end
function response(status, headers, body)
    responses = responses + 1
    if responses >= 5 then wrk.thread:stop() end
end
EOF
    wrk -t1 -c1 -d2s -s "$WORK/five.lua" "$N/small.txt" >/dev/null
}

selected simple-get && record simple-get $NGINX_PORT "${CURL[@]}" "$N/index.html"
selected keepalive && record keepalive $NGINX_PORT scenario_keepalive
selected pipelined && record pipelined $NGINX_PORT python3 "$HERE/rawclient.py" pipeline $NGINX_PORT
selected chunked-gzip && record chunked-gzip $NGINX_PORT "${CURL[@]}" --compressed "$N/style.css"
selected chunked-cgi && record chunked-cgi $LIGHTTPD_PORT "${CURL[@]}" "$L/cgi-bin/stream.sh"
selected chunked-request && record chunked-request $LIGHTTPD_PORT python3 "$HERE/rawclient.py" chunked-post $LIGHTTPD_PORT /cgi-bin/echo.sh
selected post-100-continue && record post-100-continue $NGINX_PORT scenario_post_100
selected head && record head $NGINX_PORT "${CURL[@]}" -I "$N/index.html"
selected not-modified && record not-modified $NGINX_PORT scenario_304
selected large-body && record large-body $NGINX_PORT "${CURL[@]}" "$N/large.bin"
selected basic-auth && record basic-auth $NGINX_PORT scenario_auth
selected not-found && record not-found $NGINX_PORT "${CURL[@]}" "$N/no/such/page.html"
selected custom-method && record custom-method $NGINX_PORT "${CURL[@]}" -X BREW "$N/index.html"
selected http10-lighttpd && record http10-lighttpd $LIGHTTPD_PORT "${CURL[@]}" --http1.0 "$L/cgi-bin/stream.sh"
selected wrk-burst && record wrk-burst $NGINX_PORT scenario_wrk

echo "done; servers stopped on exit"
