# shellcheck shell=bash
# Step 2: packages. Reads `packages` (one "name" or "name=version" a line) and
# `repos` (tab-separated: list name, keyring name, key URL, URI, suite). When every package is
# already installed at the wanted version it touches neither apt nor the
# network, so a re-run (and the offline lab) costs one dpkg-query.

ifbus_pkg_missing() {
    local want=$1 name ver have
    name=${want%%=*}
    ver=""
    [ "$want" = "$name" ] || ver=${want#*=}
    have=$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$name" 2>/dev/null) || return 0
    [ "${have%% *}" = installed ] || return 0
    [ -z "$ver" ] || [ "${have#* }" = "$ver" ] || return 0
    return 1
}

ifbus_install() {
    local -a missing=() pinned=()
    local p
    while IFS= read -r p; do
        [ -n "$p" ] || continue
        [ "$p" = "${p%%=*}" ] || pinned+=("${p%%=*}")
        if ifbus_pkg_missing "$p"; then missing+=("$p"); fi
    done <"$IFBUS_W/packages"
    if [ "${#missing[@]}" -eq 0 ]; then
        ifbus_log "all packages present, apt not touched"
        return 0
    fi
    ifbus_log "installing: ${missing[*]}"
    local codename name keyname key uri suite keyring list
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    while IFS=$'\t' read -r name keyname key uri suite; do
        [ -n "$name" ] || continue
        keyring=/usr/share/keyrings/$keyname.gpg
        if [ ! -s "$keyring" ] && [ ! -s "${keyring%.gpg}.asc" ]; then
            local tmpkey
            tmpkey=$(mktemp)
            curl -fsSL --retry 5 --max-time 60 -o "$tmpkey" "$key" || ifbus_fail "could not fetch the $name apt key from $key"
            # apt reads armored keys only from files named *.asc
            if head -c 40 "$tmpkey" | grep -q -- '-----BEGIN'; then keyring=${keyring%.gpg}.asc; fi
            install -m 0644 "$tmpkey" "$keyring"
            rm -f "$tmpkey"
        fi
        [ -s "$keyring" ] || keyring=${keyring%.gpg}.asc
        list=/etc/apt/sources.list.d/$name.list
        printf 'deb [signed-by=%s] %s %s %s\n' "$keyring" "$uri" "$codename" "$suite" >"$list.ifbus-new"
        mv -f "$list.ifbus-new" "$list"
    done <"$IFBUS_W/repos"
    # Nothing starts at install time: a service first runs with the validated config the apply step writes.
    local guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        guard=/usr/sbin/policy-rc.d
    fi
    local rc=0
    {
        export DEBIAN_FRONTEND=noninteractive
        ifbus_checked apt-get -o DPkg::Lock::Timeout=600 -q update &&
            ifbus_checked apt-get -o DPkg::Lock::Timeout=600 -q -y --no-install-recommends --allow-change-held-packages \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install "${missing[@]}"
    } || rc=$?
    [ -z "$guard" ] || rm -f "$guard"
    [ "$rc" -eq 0 ] || ifbus_fail "apt-get could not install ${missing[*]}"
    # A pinned version stays until the stack's pin changes.
    if [ "${#pinned[@]}" -gt 0 ]; then apt-mark hold "${pinned[@]}" >/dev/null; fi
    ifbus_log "installed ${#missing[@]} package(s)"
}
