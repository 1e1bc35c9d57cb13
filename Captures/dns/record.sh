#!/usr/bin/env bash
# Re-record the DNS captures in this directory.
#
#   sudo Captures/dns/record.sh                # all scenarios
#   sudo Captures/dns/record.sh nxdomain ...   # only the named scenario(s)
#
# Server: BIND 9 (named, Debian bind9) as an authoritative-only server started with a
# private, throwaway config from a scratch dir, listening on 127.0.0.1 port 53 (UDP+TCP).
# It serves three zones written below: example.test (signed with NSEC), nsec3.test (signed
# with NSEC3) and 2.0.192.in-addr.arpa (unsigned). The system bind9 config in /etc/bind is
# not touched; a system named holding port 53 is stopped first and restarted at the end.
# Client: dig (bind9-dnsutils). Recorder: tcpdump -i lo 'port 53'.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${WIREBEAT_DNS_WORK:-/var/tmp/wirebeat-dns-rec}"

if [[ $EUID -ne 0 ]]; then
    echo "run as root (sudo $0)" >&2
    exit 1
fi

# --- 1. packages -----------------------------------------------------------
source "$HERE/../../scripts/install-packages.sh"
install_packages --no-recommends bind9 bind9-dnsutils bind9utils tcpdump iproute2

# --- 2. free port 53 --------------------------------------------------------
port_busy() { ss -lnuptH 'sport = :53' | grep -q . || ss -lntpH 'sport = :53' | grep -q .; }
restart_system=()
if port_busy; then
    if [[ -f "$WORK/named.pid" ]]; then kill "$(cat "$WORK/named.pid")" 2>/dev/null || true; sleep 1; fi
fi
if port_busy; then
    for svc in systemd-resolved named bind9 dnsmasq unbound; do
        if service "$svc" status >/dev/null 2>&1; then
            service "$svc" stop >/dev/null 2>&1 && restart_system+=("$svc")
        fi
    done
    sleep 1
fi
if port_busy; then
    echo "port 53 is busy:" >&2
    ss -lnutp 'sport = :53' >&2
    exit 1
fi

# --- 3. zones ----------------------------------------------------------------
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"

cat >example.test.zone <<'EOF'
$TTL 3600
@               IN SOA   ns1.example.test. hostmaster.example.test. 2024050101 7200 900 1209600 300
@               IN NS    ns1.example.test.
@               IN A     192.0.2.1
@               IN AAAA  2001:db8::1
@               IN MX    10 mail.example.test.
@               IN MX    20 mail2.example.test.
@               IN TXT   "v=spf1 ip4:192.0.2.0/24 -all"
@               IN CAA   0 issue "letsencrypt.org"
@               IN CAA   128 iodef "mailto:security@example.test"
ns1             IN A     192.0.2.53
mail            IN A     192.0.2.25
mail2           IN A     192.0.2.26
www             IN CNAME web.example.test.
web             IN A     192.0.2.80
web             IN AAAA  2001:db8::80
multi           IN TXT   "first string" "second \"quoted\" string" "third;with\\backslash" "caf\195\169"
_sip._udp       IN SRV   10 60 5060 sip.example.test.
_sip._udp       IN SRV   20 40 5061 sip2.example.test.
sip             IN A     192.0.2.60
sip             IN NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp.example.test.
sip             IN NAPTR 102 10 "U" "E2U+sip" "!^.*$!sip:info@example.test!" .
svc             IN SVCB  1 web.example.test. alpn="dot,h2" port=8443 ipv4hint=192.0.2.80
www2            IN HTTPS 1 . alpn="h3,h2" ipv4hint=192.0.2.80 ipv6hint=2001:db8::80
alias           IN HTTPS 0 web.example.test.
odd\032name\.x  IN TXT   "a name with a space and a dot in one label"
private         IN TYPE65280 \# 4 0A000001
child           IN NS    ns.child.example.test.
ns.child        IN A     192.0.2.99
child           IN DS    12345 13 2 6FB27AAE4C3B27B2D1F7AA6B4F1B1E9C8D6F3A2B1C0D9E8F7A6B5C4D3E2F1A0B
EOF
# A large TXT RRset: its UDP answer does not fit 512 bytes (truncated-then-tcp).
for i in $(seq -w 1 24); do
    printf 'big             IN TXT   "record %s: %s"\n' "$i" "$(printf 'x%.0s' $(seq 1 60))" >>example.test.zone
done

cat >nsec3.test.zone <<'EOF'
$TTL 3600
@               IN SOA   ns1.nsec3.test. hostmaster.nsec3.test. 1 7200 900 1209600 300
@               IN NS    ns1.nsec3.test.
@               IN A     192.0.2.3
ns1             IN A     192.0.2.53
www             IN A     192.0.2.33
EOF

cat >2.0.192.in-addr.arpa.zone <<'EOF'
$TTL 3600
@               IN SOA   ns1.example.test. hostmaster.example.test. 1 7200 900 1209600 300
@               IN NS    ns1.example.test.
1               IN PTR   example.test.
80              IN PTR   web.example.test.
EOF

# DNSSEC: ECDSA P-256 keys (algorithm 13), example.test with NSEC, nsec3.test with NSEC3.
for zone in example.test nsec3.test; do
    ksk=$(dnssec-keygen -q -a ECDSAP256SHA256 -f KSK -n ZONE "$zone")
    zsk=$(dnssec-keygen -q -a ECDSAP256SHA256 -n ZONE "$zone")
    cat "$ksk.key" "$zsk.key" >>"$zone.zone"
done
dnssec-signzone -q -o example.test -N keep -e +31536000 example.test.zone >/dev/null
dnssec-signzone -q -o nsec3.test -3 AABBCCDD -H 0 -A -N keep -e +31536000 nsec3.test.zone >/dev/null

cat >named.conf <<EOF
options {
    directory "$WORK";
    pid-file "$WORK/named.pid";
    listen-on port 53 { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    allow-transfer { none; };
    dnssec-validation no;
    server-id "wirebeat-ns1";
    minimal-responses no;
};
controls { };
logging { channel log { file "$WORK/named.log"; severity info; }; category default { log; }; };
zone "example.test" { type primary; file "example.test.zone.signed"; };
zone "nsec3.test" { type primary; file "nsec3.test.zone.signed"; };
zone "2.0.192.in-addr.arpa" { type primary; file "2.0.192.in-addr.arpa.zone"; };
EOF

# --- 4. server ------------------------------------------------------------------
if id bind >/dev/null 2>&1; then chown -R bind "$WORK"; named -c "$WORK/named.conf" -u bind; else named -c "$WORK/named.conf"; fi
stop() {
    [[ -n "${TCPDUMP_PID:-}" ]] && kill "$TCPDUMP_PID" 2>/dev/null || true
    if [[ -f "$WORK/named.pid" ]]; then kill "$(cat "$WORK/named.pid")" 2>/dev/null || true; fi
    for svc in "${restart_system[@]}"; do service "$svc" start >/dev/null 2>&1 || true; done
}
trap stop EXIT
for _ in $(seq 1 50); do
    dig +short +time=1 +tries=1 @127.0.0.1 example.test SOA >/dev/null 2>&1 && break
    sleep 0.2
done
dig +short @127.0.0.1 example.test SOA | grep -q hostmaster || { echo "named did not come up:" >&2; cat named.log >&2; exit 1; }

# --- 5. scenarios -----------------------------------------------------------------
D=(dig @127.0.0.1 +time=2 +tries=1)

record() {  # record NAME -- commands run while tcpdump listens
    local name=$1; shift
    local out="$HERE/$name.pcap"
    tcpdump -i lo -w "$out" -U -s 0 'port 53' 2>/dev/null &
    TCPDUMP_PID=$!
    sleep 1
    "$@"
    sleep 1
    kill "$TCPDUMP_PID"; wait "$TCPDUMP_PID" 2>/dev/null || true
    TCPDUMP_PID=
    echo "$name: $(tcpdump -r "$out" 2>/dev/null | wc -l) packets"
}

all_types_udp() {
    for q in "example.test A" "example.test AAAA" "www.example.test CNAME" "example.test NS" \
             "1.2.0.192.in-addr.arpa PTR" "example.test MX" "example.test SOA" "multi.example.test TXT" \
             "_sip._udp.example.test SRV" "example.test CAA" "sip.example.test NAPTR" "child.example.test DS" \
             "example.test DNSKEY" "example.test RRSIG" "example.test NSEC" "svc.example.test SVCB" \
             "www2.example.test HTTPS" "odd\\032name\\.x.example.test TXT" "private.example.test TYPE65280" \
             "www.example.test A"; do
        # shellcheck disable=SC2086
        "${D[@]}" +nocookie $q >/dev/null
    done
}
tcp_several_messages() {
    "${D[@]}" +tcp +keepopen +nocookie example.test A www.example.test AAAA example.test MX multi.example.test TXT \
        nothere.example.test A >/dev/null
}
edns_options() {
    "${D[@]}" +dnssec +subnet=198.51.100.0/24 +cookie +nsid +bufsize=1232 example.test A >/dev/null
    "${D[@]}" +subnet=2001:db8:abcd::/48 +cookie=0102030405060708 +ednsopt=65001:cafe www.example.test AAAA >/dev/null
    "${D[@]}" +tcp +keepalive +padding=128 +nsid web.example.test A >/dev/null
}
nxdomain() {
    "${D[@]}" nothere.example.test A >/dev/null
    "${D[@]}" +tcp nothere.example.test AAAA >/dev/null
    "${D[@]}" example.org A >/dev/null || true          # not served here: REFUSED
}
truncated_then_tcp() {
    "${D[@]}" +bufsize=512 +nocookie big.example.test TXT >/dev/null    # TC=1 over UDP, dig retries over TCP
}
dnssec() {
    "${D[@]}" +dnssec www.example.test A >/dev/null
    "${D[@]}" +dnssec nothere.example.test A >/dev/null    # NXDOMAIN with NSEC proofs
    "${D[@]}" +dnssec nothere.nsec3.test A >/dev/null      # NXDOMAIN with NSEC3 proofs
    "${D[@]}" +dnssec +cd example.test DNSKEY >/dev/null
}

scenarios=(all-types-udp tcp-several-messages edns-options nxdomain truncated-then-tcp dnssec)
(($#)) && scenarios=("$@")
for s in "${scenarios[@]}"; do
    record "$s" "${s//-/_}"
done
