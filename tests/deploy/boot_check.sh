#!/bin/bash
# boot_check.sh: boot the outer and the inner host's units under a real systemd, in two
# systemd-nspawn containers joined by a private network namespace, and push one envelope
# through: portal spool -> sender -> UDP -> receiver -> runner -> loaded.
#
#   sudo tests/deploy/boot_check.sh [WORKDIR]        (default /tmp/tgw-boot; removed first)
#
# Not part of the pytest suite (it needs root, systemd-container, ~1 min and PyPI or a pip
# cache to build /opt/tgw); docs/deployment.md ("How this was verified") says what it showed.
# Each container: /usr from the host, a copy of /etc with our sysusers.conf applied, our
# units in /etc/systemd/system, configs in /etc/tgw, /opt/tgw a venv of /usr/bin/python3
# with the gateway installed from this checkout. Exit 0 only if every check passed.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:-/tmp/tgw-boot}
NETNS=tgwboot$$
PASS=0
FAIL=0
PIDS=()

say() { printf '%s\n' "$*"; }
check() {  # description command...
    local what=$1; shift
    if "$@" >/dev/null 2>&1; then say "PASS  $what"; PASS=$((PASS + 1)); else say "FAIL  $what"; FAIL=$((FAIL + 1)); fi
}
need() { command -v "$1" >/dev/null || { say "needs $1 ($2)"; exit 2; }; }

[[ $(id -u) -eq 0 ]] || { say "run as root"; exit 2; }
need systemd-nspawn "apt-get install systemd-container"
need unshare util-linux; need nsenter util-linux; need ip iproute2
[[ -x /usr/bin/python3 ]] || { say "needs /usr/bin/python3 with venv"; exit 2; }

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 1
    ip netns del "$NETNS" 2>/dev/null || true
}
trap cleanup EXIT

# --- /opt/tgw: a venv of the system Python (the daemons' users cannot reach a venv under /root)
rm -rf "$WORK"; mkdir -p "$WORK/opt"
/usr/bin/python3 -m venv "$WORK/opt/tgw.build"
"$WORK/opt/tgw.build/bin/pip" install -q --upgrade pip >/dev/null
"$WORK/opt/tgw.build/bin/pip" install -q "$REPO" >"$WORK/pip.log" 2>&1
mv "$WORK/opt/tgw.build" "$WORK/opt/tgw"
grep -l "^#!$WORK/opt/tgw.build/bin/python" "$WORK"/opt/tgw/bin/* | \
    xargs sed -i "1s|^#!$WORK/opt/tgw.build/bin/python|#!/opt/tgw/bin/python|"
install -D -m 0755 "$REPO/systemd/common/tgw-crl-refresh" "$WORK/opt/tgw/libexec/tgw-crl-refresh"
# On the host the relocated venv still runs as `$WORK/opt/tgw/bin/python -m tgw`.

# --- demo PKI, documents, one envelope
"$WORK/opt/tgw/bin/python" -m tgw pki demo --out "$WORK/pki" --agencies 1 >/dev/null
"$WORK/opt/tgw/bin/python" -m tgw demo-data documents --agency A10001 --count 3 --out "$WORK/docs" --seed 1 >/dev/null 2>&1
"$WORK/opt/tgw/bin/python" -m tgw agency build --pki "$WORK/pki" --agency A10001 --out "$WORK/TPE0001.p7m" "$WORK"/docs/*.json >/dev/null

# --- the two roots
for zone in outer inner; do
    R=$WORK/root-$zone
    mkdir -p "$R"/{usr/lib,etc,var,tmp,run,opt,proc,sys,dev,root,home,srv,mnt,media,boot}
    chmod 1777 "$R/tmp"
    for l in bin lib lib64 sbin; do ln -s "usr/$l" "$R/$l"; done
    cp /usr/lib/os-release "$R/usr/lib/"   # nspawn looks for it before /usr is mounted over
    cp -a /etc/. "$R/etc/"
    rm -rf "$R/etc/systemd/system"; mkdir -p "$R/etc/systemd/system" "$R/etc/tmpfiles.d"
    : >"$R/etc/machine-id"
    systemd-sysusers --root="$R" - <"$REPO/systemd/$zone/sysusers.conf" >/dev/null 2>&1
    cp "$REPO/systemd/$zone/tmpfiles.conf" "$R/etc/tmpfiles.d/tgw.conf"
    cp "$REPO"/systemd/$zone/*.service "$REPO"/systemd/$zone/*.target "$REPO"/systemd/common/tgw-crl-refresh.* \
        "$R/etc/systemd/system/"
    mkdir -p "$R/etc/tgw/pki/crl-src" "$R/etc/tgw/credentials"; chmod 0700 "$R/etc/tgw/credentials"
    cp "$WORK/pki/root.pem" "$WORK/pki/gca.pem" "$R/etc/tgw/pki/"
    cp "$WORK/pki/treasury/envelope.pem" "$R/etc/tgw/pki/treasury-envelope.pem"
    cp "$WORK"/pki/crl/*.crl "$R/etc/tgw/pki/crl-src/"
    printf 'gca  file:///etc/tgw/pki/crl-src/gca.crl  /etc/tgw/pki/gca.pem\nroot file:///etc/tgw/pki/crl-src/root.crl /etc/tgw/pki/root.pem\n' \
        >"$R/etc/tgw/crl-sources.list"
done

common() {  # zone db
    printf 'node: {zone: %s, data_dir: /var/lib/tgw}\ndatabase: {url: "sqlite:////var/lib/tgw/db/%s.db"}\nevents: {publish: "ipc:///run/tgw-feed/monitor.sock"}\n' "$1" "$1"
}
TRUST='trust: {anchors: [/etc/tgw/pki/root.pem], intermediates: [/etc/tgw/pki/gca.pem], crl_dir: /var/lib/tgw/crl}'
R=$WORK/root-outer
{ common outer; echo "$TRUST"; cat <<'Y'; } >"$R/etc/tgw/outer.yaml"
outer: {bind: "127.0.0.1:18080", outbound: /var/lib/tgw/spool/outbound, upload_tmp: /var/lib/tgw/spool/incoming,
        secret_key_file: /var/lib/tgw/outer/secret, registration_export_dir: /var/lib/tgw/outer/certreq,
        min_free_bytes: 0, min_free_fraction: 0.0}
Y
{ common outer; cat <<'Y'; } >"$R/etc/tgw/transfer-send.yaml"
transfer_send: {outbound: /var/lib/tgw/spool/outbound, sent_dir: /var/lib/tgw/spool/sent,
                state_dir: /var/lib/tgw/spool/transfer, target: "127.0.0.1:17700", repeat: 1}
Y
{ common outer; cat <<'Y'; } >"$R/etc/tgw/monitor-outer.yaml"
monitor: {listen: "ipc:///run/tgw-feed/monitor.sock", metrics_bind: "127.0.0.1:19601", disk_paths: [/var/lib/tgw],
          daemons: [{name: outer-web, systemd_unit: tgw-outer-web.service},
                    {name: transfer-send, systemd_unit: tgw-transfer-send.service}]}
Y
R=$WORK/root-inner
install -m 0600 "$WORK/pki/treasury/envelope.key" "$R/etc/tgw/credentials/treasury-envelope.key"
cp -r "$WORK/pki" "$R/etc/tgw/pki-demo"
{ common inner; cat <<'Y'; } >"$R/etc/tgw/transfer-receive.yaml"
transfer_receive: {listen: "127.0.0.1:17700", inbound: /var/lib/tgw/spool/inbound, staging_dir: /var/lib/tgw/spool/staging,
                   state_dir: /var/lib/tgw/spool/transfer, socket_buffer_bytes: 4194304}
Y
{ common inner; echo "$TRUST"; cat <<'Y'; } >"$R/etc/tgw/inner-admin.yaml"
treasury: {certificate: /etc/tgw/pki/treasury-envelope.pem}
inner: {inbound: /var/lib/tgw/spool/inbound, spool_dir: /var/lib/tgw/spool/inner,
        quarantine_dir: /var/lib/tgw/spool/quarantine, archive_dir: /var/lib/tgw/archive}
Y
sed 's|^treasury: {certificate: /etc/tgw/pki/treasury-envelope.pem}|treasury: {certificate: /etc/tgw/pki/treasury-envelope.pem, private_key: /run/credentials/tgw-inner-runner.service/treasury-key}|' \
    "$R/etc/tgw/inner-admin.yaml" >"$R/etc/tgw/inner.yaml"
{ common inner; echo "$TRUST"; sed -n '/^inner:/,$p' "$R/etc/tgw/inner-admin.yaml"; cat <<'Y'; } >"$R/etc/tgw/console.yaml"
console: {bind: "127.0.0.1:18081", secret_key_file: /var/lib/tgw/console/secret,
          certreq_import_dir: /var/lib/tgw/console/certreq}
Y
{ common inner; cat <<'Y'; } >"$R/etc/tgw/monitor-inner.yaml"
monitor: {listen: "ipc:///run/tgw-feed/monitor.sock", metrics_bind: "127.0.0.1:19602", disk_paths: [/var/lib/tgw],
          daemons: [{name: transfer-receive, systemd_unit: tgw-transfer-receive.service},
                    {name: inner-runner, systemd_unit: tgw-inner-runner.service}]}
Y
# --- boot
ip netns add "$NETNS"; ip -n "$NETNS" link set lo up
for zone in outer inner; do
    setsid unshare -m --propagation private sh -c "mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn &&
        exec systemd-nspawn -q -D $WORK/root-$zone -b --register=no --keep-unit --machine=tgw-$zone-$$ \
        --network-namespace-path=/run/netns/$NETNS --bind-ro=/usr --bind-ro=$WORK/opt:/opt --console=passive" \
        >"$WORK/$zone.console" 2>&1 &
    PIDS+=($!)
done
leader() { pgrep -P "$(pgrep -f "machine=tgw-$1-$$" | tail -1)" systemd | head -1; }
inside() { local z=$1; shift; nsenter -t "$(leader "$z")" -m -u -i -n -p -C -- env -i PATH=/usr/sbin:/usr/bin SYSTEMD_COLORS=0 "$@"; }
for zone in outer inner; do
    for _ in $(seq 60); do
        state=$( [[ -n $(leader "$zone" 2>/dev/null) ]] && inside "$zone" systemctl is-system-running 2>/dev/null || true)
        [[ -n $state && $state != starting && $state != initializing ]] && break
        sleep 1
    done
done

for zone in outer inner; do
    inside $zone sh -c "chown root:root /etc/tgw/*.yaml; chmod 0644 /etc/tgw/*.yaml"
    inside $zone systemd-tmpfiles --create /etc/tmpfiles.d/tgw.conf
    check "$zone: CRLs installed by tgw-crl-refresh.service" inside $zone systemctl start tgw-crl-refresh.service
done
inside outer sh -c 'chown root:tgw-web /etc/tgw/outer.yaml; chown root:tgw-send /etc/tgw/transfer-send.yaml;
                chown root:tgw-monitor /etc/tgw/monitor-outer.yaml; chmod 0640 /etc/tgw/*.yaml'
inside inner sh -c 'chown root:tgw-recv /etc/tgw/transfer-receive.yaml; chown root:tgw-inner /etc/tgw/inner.yaml /etc/tgw/inner-admin.yaml;
                chown root:tgw-console /etc/tgw/console.yaml; chown root:tgw-monitor /etc/tgw/monitor-inner.yaml;
                chmod 0640 /etc/tgw/*.yaml'
inside inner runuser -u tgw-inner -- /opt/tgw/bin/tgw registry import /etc/tgw/pki-demo/registry.yaml --config /etc/tgw/inner-admin.yaml >/dev/null
inside outer systemctl enable -q tgw-outer-web.service tgw-transfer-send.service tgw-monitor.service tgw-outer.target
inside inner systemctl enable -q tgw-transfer-receive.service tgw-inner-runner.service tgw-inner-console.service \
    tgw-monitor.service tgw-inner.target
check "outer: tgw-outer.target starts (every daemon reached READY=1)" inside outer systemctl start tgw-outer.target
check "inner: tgw-inner.target starts (every daemon reached READY=1)" inside inner systemctl start tgw-inner.target
sleep 3
for u in tgw-outer-web tgw-transfer-send tgw-monitor; do check "outer: $u active" inside outer systemctl is-active -q $u; done
for u in tgw-transfer-receive tgw-inner-runner tgw-inner-console tgw-monitor; do
    check "inner: $u active" inside inner systemctl is-active -q $u
done
check "outer: portal answers HTTP on 127.0.0.1:18080" \
    inside outer sh -c 'test "$(curl -s -o /dev/null -w "%{http_code}" --max-time 5 http://127.0.0.1:18080/)" != 000'
check "inner: treasury key readable by tgw-inner" inside inner runuser -u tgw-inner -- test -r /run/credentials/tgw-inner-runner.service/treasury-key
check "inner: treasury key NOT readable by tgw-recv" inside inner sh -c '! runuser -u tgw-recv -- cat /run/credentials/tgw-inner-runner.service/treasury-key'

# --- one envelope through, written into the spool as the portal would (umask 0027, via incoming/)
install -m 0644 "$WORK/TPE0001.p7m" "$WORK/root-outer/etc/tgw/TPE0001.p7m"
inside outer runuser -u tgw-web -- sh -c 'umask 0027; cp /etc/tgw/TPE0001.p7m /var/lib/tgw/spool/incoming/ &&
                                     mv /var/lib/tgw/spool/incoming/TPE0001.p7m /var/lib/tgw/spool/outbound/'
# The runner archives the original only after the load has committed.
loaded() { inside inner sh -c 'find /var/lib/tgw/archive -name "TPE0001*" | grep -q .'; }
for _ in $(seq 30); do loaded && break; sleep 1; done
check "envelope loaded on the inner host" loaded
say "--- inner runner's last log lines:"
inside inner journalctl -u tgw-inner-runner -o cat --no-pager -n 3 | cut -c1-240

# --- a refused envelope is quarantined; the console's user may retry it (same code as its page)
head -c 3000 /dev/urandom >"$WORK/root-outer/etc/tgw/TPE0002.p7m"; chmod 0644 "$WORK/root-outer/etc/tgw/TPE0002.p7m"
inside outer runuser -u tgw-web -- sh -c 'umask 0027; cp /etc/tgw/TPE0002.p7m /var/lib/tgw/spool/incoming/ &&
                                     mv /var/lib/tgw/spool/incoming/TPE0002.p7m /var/lib/tgw/spool/outbound/'
quarantined() { inside inner test -f /var/lib/tgw/spool/quarantine/TPE0002.json; }
for _ in $(seq 60); do quarantined && break; sleep 1; done
check "a garbage envelope is quarantined on the inner host" quarantined
inside inner systemctl stop tgw-inner-runner   # else it would judge the retried file again at once
check "the console's user may retry a quarantine entry" \
    inside inner runuser -u tgw-console -- sh -c 'umask 0027; /opt/tgw/bin/tgw inner quarantine retry TPE0002 --config /etc/tgw/console.yaml'
check "the retried entry is readable by the runner's user" \
    inside inner runuser -u tgw-inner -- grep -q '"status": "retried"' /var/lib/tgw/spool/quarantine/TPE0002.json

# --- the watchdog kills a hung daemon
mkdir -p "$WORK/root-outer/etc/systemd/system/tgw-transfer-send.service.d"
printf '[Service]\nWatchdogSec=5\n' >"$WORK/root-outer/etc/systemd/system/tgw-transfer-send.service.d/wd.conf"
inside outer systemctl daemon-reload; inside outer systemctl restart tgw-transfer-send
inside outer sh -c 'kill -STOP $(systemctl show -p MainPID --value tgw-transfer-send)'
sleep 9
check "outer: a stopped sender is killed by the watchdog" \
    inside outer sh -c 'journalctl -u tgw-transfer-send -o cat | grep -q "Failed with result .watchdog."'

say "--- $PASS passed, $FAIL failed (work folder $WORK)"
[[ $FAIL -eq 0 ]]
