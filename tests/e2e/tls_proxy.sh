#!/usr/bin/env bash
# The HTTPS deployment the README recommends, end to end on loopback:
#
#   client --TLS--> nginx (terminates TLS, adds X-Forwarded-For) --HTTP--> shoal
#                                                 shoal --http-client-ip-header X-Forwarded-For
#
# - makes a throwaway CA and a server certificate for 127.0.0.1/localhost
#   (subjectAltName) with openssl; curl trusts only that CA (--cacert);
# - starts shoal on --http 127.0.0.1:0 (no UDP) and reads its bound address from
#   the "listening on http://" log line (no port race on shoal's side);
# - starts Debian's nginx in the foreground with its own prefix, pid, logs and
#   temp dirs under a temp dir, on a port picked by binding :0 in python and
#   releasing it (a race: retried on a bind failure), proxying only /announce
#   and /scrape;
# - asserts: a BEP 3 announce through the proxy gets a bencoded dict with an
#   interval; a second peer's announce for the same hash lists the first one at
#   127.0.0.1 (the address nginx forwarded), even though the first client sent
#   a forged X-Forwarded-For (shoal takes the rightmost entry, nginx's); scrape
#   through the proxy counts both; /metrics is not exposed through the proxy;
#   a direct announce to shoal without the header is refused;
# - shoal's own client (`shoal announce https://... --ca-file`) announces a
#   third peer through the proxy and gets both earlier peers back.
#
# Needs: nginx (Debian: apt-get install nginx-light or nginx), openssl, curl,
# python3, a built shoal (target/debug or target/release; `cargo build`).
# Every wait is bounded; nginx and shoal are killed on exit. About 1 s.
# Usage: tests/e2e/tls_proxy.sh   (from anywhere). Exits non-zero on failure.

set -uo pipefail
cd "$(dirname "$0")/../.."

. tests/lib.sh

for tool in nginx openssl curl python3; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
        fail "$tool is not installed"
        finish
    }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
shoal=
for b in target/debug/shoal target/release/shoal; do
    [ -x "$b" ] && shoal=$(realpath "$b") && break
done
[ -n "$shoal" ] || {
    fail "no built shoal in target/ (run cargo build --bin shoal)"
    finish
}

tmp=$(mktemp -d)
shoal_pid=
nginx_pid=
cleanup() {
    for p in $nginx_pid $shoal_pid; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

# ---- test CA and server certificate ----------------------------------------
ca="$tmp/ca.pem"
{
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$tmp/ca.key" -out "$ca" -days 2 -subj "/CN=shoal test CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$tmp/server.key" -out "$tmp/server.csr" -subj "/CN=localhost" &&
        printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
            "extendedKeyUsage=serverAuth" "basicConstraints=CA:FALSE" >"$tmp/ext" &&
        openssl x509 -req -in "$tmp/server.csr" -CA "$ca" -CAkey "$tmp/ca.key" \
            -CAcreateserial -days 2 -extfile "$tmp/ext" -out "$tmp/server.pem"
} >"$tmp/openssl.log" 2>&1 || {
    fail "openssl could not make the test CA:"
    sed 's/^/     /' "$tmp/openssl.log"
    finish
}
pass "test CA and server certificate (SAN IP:127.0.0.1, DNS:localhost)"

# ---- shoal -----------------------------------------------------------------
"$shoal" --no-udp --http 127.0.0.1:0 --http-client-ip-header X-Forwarded-For \
    --workers 1 --log info >"$tmp/shoal.log" 2>&1 &
shoal_pid=$!
upstream=
for _ in $(seq 100); do
    upstream=$(sed -n 's|.*listening on http://\([0-9.:]*\).*|\1|p' "$tmp/shoal.log" | head -1)
    [ -n "$upstream" ] && break
    kill -0 "$shoal_pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$upstream" ] || {
    fail "shoal did not report its HTTP address; its log:"
    sed 's/^/     /' "$tmp/shoal.log"
    finish
}
pass "shoal listening on http://$upstream"

# ---- nginx -----------------------------------------------------------------
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
write_nginx_conf() {
    local port=$1
    mkdir -p "$tmp/nginx/logs" "$tmp/nginx/tmp"
    {
        # As root the workers would switch to "nobody", who cannot read the
        # temp dir; a non-root nginx ignores the directive, so omit it.
        [ "$(id -u)" -eq 0 ] && echo "user root;"
        cat <<CONF
daemon off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 64; }
http {
    access_log $tmp/nginx/logs/access.log;
    client_body_temp_path $tmp/nginx/tmp/body;
    proxy_temp_path $tmp/nginx/tmp/proxy;
    fastcgi_temp_path $tmp/nginx/tmp/fastcgi;
    uwsgi_temp_path $tmp/nginx/tmp/uwsgi;
    scgi_temp_path $tmp/nginx/tmp/scgi;

    upstream shoal {
        server $upstream;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:$port ssl;
        server_name localhost;
        ssl_certificate $tmp/server.pem;
        ssl_certificate_key $tmp/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;

        # Only the tracker endpoints go public; /metrics and /health stay on
        # shoal's loopback port for the scraper and the health check.
        location ~ ^/(announce|scrape)\$ {
            proxy_pass http://shoal;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            # Appends the TCP peer to whatever the client sent; shoal reads
            # the rightmost entry, the one nginx wrote.
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
        location / { return 404; }
    }
}
CONF
    } >"$tmp/nginx.conf"
}

port=
for attempt in 1 2 3 4 5; do
    p=$(free_port)
    write_nginx_conf "$p"
    "$nginx_bin" -p "$tmp/nginx/" -c "$tmp/nginx.conf" -e "$tmp/nginx/logs/error.log" \
        >"$tmp/nginx/stdout" 2>&1 &
    nginx_pid=$!
    # Ready when it answers TLS with our certificate; gone if the bind failed.
    for _ in $(seq 100); do
        if curl -s -o /dev/null --max-time 2 --cacert "$ca" "https://127.0.0.1:$p/"; then
            port=$p
            break
        fi
        kill -0 "$nginx_pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] && break
    kill "$nginx_pid" 2>/dev/null
    wait "$nginx_pid" 2>/dev/null
    nginx_pid=
    echo "     nginx attempt $attempt on port $p failed; retrying"
done
[ -n "$port" ] || {
    fail "nginx did not come up; its error log:"
    sed 's/^/     /' "$tmp/nginx/logs/error.log" "$tmp/nginx/stdout" 2>/dev/null
    finish
}
pass "nginx terminating TLS on https://127.0.0.1:$port ($("$nginx_bin" -v 2>&1 | sed 's/.*: //'))"

# ---- announces through the proxy -------------------------------------------
pct() { # 20 bytes from a hex string, percent-encoded
    sed 's/../%&/g' <<<"$1"
}
info_hash_hex=0123456789abcdef0123456789abcdef01234567
ih=$(pct "$info_hash_hex")
announce_url() { # peer_id_hex port left
    echo "https://127.0.0.1:$port/announce?info_hash=$ih&peer_id=$(pct "$1")&port=$2&uploaded=0&downloaded=0&left=$3&compact=1"
}
# A small bencode reader: prints "interval=N", one "peer=IP:PORT" per compact
# peer, "failure=..." and for scrapes "complete=N incomplete=N".
bdecode() {
    python3 -c '
import sys
data = sys.stdin.buffer.read()
def dec(i):
    c = data[i:i+1]
    if c == b"i":
        j = data.index(b"e", i)
        return int(data[i+1:j]), j + 1
    if c == b"l":
        i += 1; out = []
        while data[i:i+1] != b"e":
            v, i = dec(i); out.append(v)
        return out, i + 1
    if c == b"d":
        i += 1; out = {}
        while data[i:i+1] != b"e":
            k, i = dec(i); v, i = dec(i); out[k] = v
        return out, i + 1
    j = data.index(b":", i)
    n = int(data[i:j])
    return data[j+1:j+1+n], j + 1 + n
try:
    d, end = dec(0)
    assert end == len(data) and isinstance(d, dict)
except Exception as e:
    print("not-bencode", repr(data[:200])); sys.exit(0)
if b"failure reason" in d: print("failure=" + d[b"failure reason"].decode(errors="replace"))
if b"interval" in d: print("interval=%d" % d[b"interval"])
p = d.get(b"peers", b"")
for k in range(0, len(p) - len(p) % 6, 6):
    print("peer=%d.%d.%d.%d:%d" % (p[k], p[k+1], p[k+2], p[k+3], p[k+4] * 256 + p[k+5]))
for h, row in (d.get(b"files") or {}).items():
    print("complete=%d incomplete=%d" % (row[b"complete"], row[b"incomplete"]))
'
}

# Peer A (a seeder, port 51413) forges X-Forwarded-For; nginx appends the real
# peer, so shoal must still see 127.0.0.1.
a=$(curl -sS --max-time 5 --cacert "$ca" -H "X-Forwarded-For: 203.0.113.9" \
    "$(announce_url 2d5452333030302d616161616161616161616161 51413 0)" | bdecode)
if grep -q '^interval=[1-9]' <<<"$a" && ! grep -q '^failure=' <<<"$a"; then
    pass "announce over https through nginx: bencoded dict with $(grep '^interval=' <<<"$a")"
else
    fail "announce over https through nginx: $a"
fi

b=$(curl -sS --max-time 5 --cacert "$ca" \
    "$(announce_url 2d5452333030302d626262626262626262626262 51414 1000)" | bdecode)
if grep -qx 'peer=127.0.0.1:51413' <<<"$b"; then
    pass "second peer's reply lists the first at 127.0.0.1:51413 (the X-Forwarded-For nginx wrote)"
else
    fail "second peer's reply lacks peer=127.0.0.1:51413: $b"
fi
if grep -q '203.0.113.9' <<<"$b"; then
    fail "the forged X-Forwarded-For entry reached the swarm: $b"
else
    pass "a client-sent X-Forwarded-For entry is not believed"
fi

s=$(curl -sS --max-time 5 --cacert "$ca" "https://127.0.0.1:$port/scrape?info_hash=$ih" | bdecode)
if grep -qx 'complete=1 incomplete=1' <<<"$s"; then
    pass "scrape over https through nginx: 1 seeder, 1 leecher"
else
    fail "scrape over https through nginx: $s"
fi

code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$ca" "https://127.0.0.1:$port/metrics")
if [ "$code" = 404 ]; then
    pass "/metrics is not exposed through the proxy (404)"
else
    fail "/metrics through the proxy answered $code, want 404"
fi

direct=$(curl -sS --max-time 5 \
    "http://$upstream/announce?info_hash=$ih&peer_id=$(pct 2d5452333030302d636363636363636363636363)&port=1&left=0" | bdecode)
if grep -q '^failure=' <<<"$direct"; then
    pass "a direct announce without X-Forwarded-For is refused ($direct)"
else
    fail "a direct announce without X-Forwarded-For was accepted: $direct"
fi

# ---- shoal's own client over https ------------------------------------------
# A third peer (a leecher) through nginx with shoal's client, trusting the test
# CA with --ca-file: its reply lists the two earlier peers.
if out=$("$shoal" announce "https://127.0.0.1:$port/announce" --ca-file "$ca" \
    --info-hash "$info_hash_hex" --port 51415 --json 2>&1) &&
    grep -q '"interval"' <<<"$out" &&
    grep -q '"127.0.0.1:51413"' <<<"$out" && grep -q '"127.0.0.1:51414"' <<<"$out"; then
    pass "shoal announce https://... --ca-file: reply lists the proxied peers"
else
    fail "shoal announce https://... --ca-file: $out"
fi

finish
