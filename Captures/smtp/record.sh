#!/usr/bin/env bash
# Re-record the SMTP golden captures in this directory.
#
#   sudo Captures/smtp/record.sh            # all scenarios
#   sudo Captures/smtp/record.sh plain-mail # only the named scenario(s)
#
# Server: Exim 4 (Debian exim4-daemon-light) started with a private, throwaway
# config (-C) from a scratch dir; it listens on 127.0.0.1 ports 25, 587, 2525.
# The system exim4 config in /etc/exim4 is not touched, and the daemon is
# stopped on exit. Clients: swaks and rawclient.py (next to this script).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${WIREBEAT_SMTP_WORK:-/var/tmp/wirebeat-smtp-rec}"
CONF="$WORK/exim.conf"
PIDFILE="$WORK/exim.pid"
EXIM_USER=Debian-exim

if [[ $EUID -ne 0 ]]; then
    echo "run as root (sudo $0)" >&2
    exit 1
fi

# --- 1. packages -----------------------------------------------------------
source "$HERE/../../scripts/install-packages.sh"
install_packages exim4-daemon-light swaks tcpdump tshark openssl python3 libnet-ssleay-perl libio-socket-ssl-perl iproute2
EXIM=$(command -v exim4 || command -v exim)

# If the system exim4 (or anything else) holds our ports, stop the system service.
if ss -ltnH '( sport = :25 or sport = :587 or sport = :2525 )' | grep -q .; then
    if [[ -f "$PIDFILE" ]]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; sleep 1; fi
    if ss -ltnH '( sport = :25 or sport = :587 or sport = :2525 )' | grep -q .; then
        service exim4 stop 2>/dev/null || true
        sleep 1
    fi
    if ss -ltnH '( sport = :25 or sport = :587 or sport = :2525 )' | grep -q .; then
        echo "ports 25/587/2525 are busy:" >&2
        ss -ltnp '( sport = :25 or sport = :587 or sport = :2525 )' >&2
        exit 1
    fi
fi

# --- 2. throwaway server config -----------------------------------------------
rm -rf "$WORK"
mkdir -p "$WORK"/{spool,log,mail,tls}
chmod 755 "$WORK"

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
    -subj "/CN=mx.wirebeat.test" \
    -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>/dev/null
chown -R "$EXIM_USER:$EXIM_USER" "$WORK"/{spool,log,mail,tls}
chmod 600 "$WORK/tls/key.pem"

cat >"$CONF" <<EOF
# Throwaway Exim config for recording Wirebeat SMTP captures. Not for production.
primary_hostname = mx.wirebeat.test
qualify_domain = wirebeat.test
domainlist local_domains = wirebeat.test

local_interfaces = 127.0.0.1
daemon_smtp_ports = 25 : 587 : 2525
smtp_banner = \$smtp_active_hostname ESMTP Exim \$version_number Wirebeat test server

exim_user = $EXIM_USER
exim_group = $EXIM_USER
never_users = root
spool_directory = $WORK/spool
log_file_path = $WORK/log/%slog
host_lookup =
rfc1413_hosts =
message_size_limit = 10M

pipelining_advertise_hosts = *
pipelining_connect_advertise_hosts =
keep_environment =
chunking_advertise_hosts = *
auth_advertise_hosts = *
tls_advertise_hosts = *
tls_certificate = $WORK/tls/cert.pem
tls_privatekey = $WORK/tls/key.pem

acl_smtp_rcpt = acl_rcpt
acl_smtp_vrfy = accept

begin acl

acl_rcpt:
  deny    !domains = +local_domains
          message = 5.7.1 <\$local_part@\$domain>: relay access denied
  deny    !verify = recipient
          message = 5.1.1 <\$local_part@\$domain>: recipient address rejected\n\
                    User unknown in local recipient table\n\
                    (Wirebeat test server)
  accept

begin routers

local_user:
  driver = accept
  domains = +local_domains
  local_parts = alice : bob : carol : dave : postmaster
  transport = local_file

begin transports

local_file:
  driver = appendfile
  file = $WORK/mail/\$local_part_data
  user = $EXIM_USER
  group = $EXIM_USER
  mode = 0600
  delivery_date_add
  envelope_to_add
  return_path_add

begin authenticators

plain_server:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = \${if and {{eq{\$auth2}{alice}}{eq{\$auth3}{s3cret-Passw0rd}}}}
  server_set_id = \$auth2
  server_advertise_condition = true

login_server:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = \${if and {{eq{\$auth1}{alice}}{eq{\$auth2}{s3cret-Passw0rd}}}}
  server_set_id = \$auth1
  server_advertise_condition = true
EOF
chown root:root "$CONF"
chmod 644 "$CONF"

"$EXIM" -C "$CONF" -bV >/dev/null

stop_daemon() {
    if [[ -f "$PIDFILE" ]]; then
        kill "$(cat "$PIDFILE")" 2>/dev/null || true
        rm -f "$PIDFILE"
    fi
}
trap stop_daemon EXIT

"$EXIM" -C "$CONF" -bd -oP "$PIDFILE"
for _ in $(seq 50); do
    n=$(ss -ltnH '( sport = :25 or sport = :587 or sport = :2525 )' | wc -l)
    ((n >= 3)) && break
    sleep 0.1
done
((n >= 3)) || { echo "exim did not start; see $WORK/log" >&2; exit 1; }

# --- 3. scenarios ---------------------------------------------------------------
FIXED_DATE="Thu, 01 Jan 2026 00:00:00 +0000"
swaks_common=(--server 127.0.0.1 --ehlo client.wirebeat.test --timeout 15
              --header "Date: $FIXED_DATE")

# capture <name> <port> <command...>
capture() {
    local name=$1 port=$2
    shift 2
    local out="$HERE/$name.pcap" err="$WORK/$name.tcpdump.err"
    echo "=== $name (port $port)"
    rm -f "$out"
    tcpdump -i lo -s 0 -U -w "$out" "tcp port $port" 2>"$err" &
    local tpid=$!
    for _ in $(seq 100); do
        grep -q 'listening on' "$err" 2>/dev/null && break
        sleep 0.05
    done
    sleep 0.3
    local rc=0
    "$@" >"$WORK/$name.client.log" 2>&1 || rc=$?
    sleep 1   # let the FIN/ACK exchange finish
    kill -INT "$tpid"
    wait "$tpid" || true
    chown --reference="$HERE" "$out"
    sed -n 's/^/    /p' "$WORK/$name.client.log" | cut -c1-110 | grep -Ev '^ +(<|~>|\*\*) ' | head -60 || true
    if ((rc != 0)); then
        echo "!!! client for $name exited with $rc (see $WORK/$name.client.log)" >&2
        return 1
    fi
}

rc_ok() { # run a command, treat the listed exit codes as success
    local ok=$1; shift
    local rc=0
    "$@" || rc=$?
    [[ " $ok " == *" $rc "* ]]
}

sc_plain_mail() {
    capture plain-mail 25 swaks "${swaks_common[@]}" --port 25 \
        --from alice@wirebeat.test --to bob@wirebeat.test \
        --header "Subject: Wirebeat plain mail test" \
        --header "Message-Id: <plain-mail@wirebeat.test>" \
        --body "Hello Bob, this is a plain test mail."
}

sc_multi_rcpt_one_rejected() {
    # swaks exits 0 as long as one recipient is accepted.
    capture multi-rcpt-one-rejected 25 swaks "${swaks_common[@]}" --port 25 \
        --from alice@wirebeat.test \
        --to bob@wirebeat.test,nosuchuser@wirebeat.test,carol@wirebeat.test \
        --header "To: bob@wirebeat.test, nosuchuser@wirebeat.test, carol@wirebeat.test" \
        --header "Subject: Wirebeat multi rcpt test" \
        --header "Message-Id: <multi-rcpt-one-rejected@wirebeat.test>" \
        --body "Three recipients, the middle one does not exist."
}

sc_pipelining() {
    capture pipelining 2525 swaks "${swaks_common[@]}" --port 2525 --pipeline \
        --from alice@wirebeat.test --to bob@wirebeat.test,carol@wirebeat.test \
        --header "Subject: Wirebeat pipelining test" \
        --header "Message-Id: <pipelining@wirebeat.test>" \
        --body "Sent with PIPELINING."
}

sc_auth_plain() {
    capture auth-plain 587 swaks "${swaks_common[@]}" --port 587 \
        --auth PLAIN --auth-user alice --auth-password 's3cret-Passw0rd' \
        --from alice@wirebeat.test --to bob@wirebeat.test \
        --header "Subject: Wirebeat AUTH PLAIN test" \
        --header "Message-Id: <auth-plain@wirebeat.test>" \
        --body "Sent after AUTH PLAIN."
}

sc_auth_login() {
    capture auth-login 587 swaks "${swaks_common[@]}" --port 587 \
        --auth LOGIN --auth-user alice --auth-password 's3cret-Passw0rd' \
        --from alice@wirebeat.test --to bob@wirebeat.test \
        --header "Subject: Wirebeat AUTH LOGIN test" \
        --header "Message-Id: <auth-login@wirebeat.test>" \
        --body "Sent after AUTH LOGIN."
}

raw() { capture "$1" "$2" python3 -u "$HERE/rawclient.py" "$1" "$2"; }
# swaks --tls ends with an RST (it closes without reading Exim's close_notify),
# so STARTTLS uses the raw client, which does a clean close_notify + FIN teardown.
sc_starttls()               { raw starttls 587; }
sc_bdat_chunking()          { raw bdat-chunking 2525; }
sc_rset_mid_transaction()   { raw rset-mid-transaction 25; }
sc_lowercase_commands()     { raw lowercase-commands 25; }
sc_multiline_reply()        { raw multiline-reply 25; }
sc_large_message()          { raw large-message 2525; }
sc_two_mails_one_session()  { raw two-mails-one-session 25; }
sc_vrfy_noop_help_unknown() { raw vrfy-noop-help-unknown 25; }

ALL=(plain-mail multi-rcpt-one-rejected pipelining auth-plain auth-login starttls
     bdat-chunking rset-mid-transaction lowercase-commands multiline-reply
     large-message two-mails-one-session vrfy-noop-help-unknown)
if (($#)); then SEL=("$@"); else SEL=("${ALL[@]}"); fi

failed=()
for s in "${SEL[@]}"; do
    "sc_${s//-/_}" || failed+=("$s")
done

sleep 1
stop_daemon
trap - EXIT

# --- 4. tshark cross-check --------------------------------------------------------
TSHARK_CMD='tshark -r X.pcap -d tcp.port==2525,smtp -d tcp.port==587,smtp -Y smtp -T fields -e frame.number -e smtp.req.command -e smtp.req.parameter -e smtp.response.code -e smtp.rsp.parameter'
{
    echo "# Generated by record.sh. For each capture:"
    echo "#   $TSHARK_CMD"
    echo "# (columns: frame, command, parameter, reply code(s), reply text; lines after"
    echo "#  STARTTLS in starttls.pcap are encrypted, so only the cleartext part shows)"
    for f in "${ALL[@]}"; do
        [[ -f "$HERE/$f.pcap" ]] || continue
        echo
        echo "## $f.pcap"
        ${TSHARK_CMD/X.pcap/$HERE/$f.pcap} 2>&1 | grep -v '^Running as user' | sed 's/\t/ | /g'
    done
} >"$HERE/tshark-check.txt"

ls -l "$HERE"/*.pcap
echo "delivered mailboxes in $WORK/mail:"; ls -l "$WORK/mail"
if ((${#failed[@]})); then
    echo "FAILED scenarios: ${failed[*]}" >&2
    exit 1
fi
echo "all scenarios recorded"
