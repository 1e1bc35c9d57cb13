# Sourced by the recording and benchmark scripts: install_packages [--no-recommends] PKG…
# installs the Debian packages that are missing, without letting their maintainer scripts
# start system services (a temporary policy-rc.d), and retries once after `apt-get update`.
install_packages() {
    local options=() need=() p rc=0 made_policy=0
    if [[ ${1:-} == --no-recommends ]]; then options+=(--no-install-recommends); shift; fi
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
    done
    ((${#need[@]})) || return 0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${options[@]}" "${need[@]}" || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y "${options[@]}" "${need[@]}"; } || rc=$?
    if ((made_policy)); then rm -f /usr/sbin/policy-rc.d; fi
    return "$rc"
}
