# shellcheck shell=bash
# IF.bus gateway deploy steps, run as root on a host. Each Pulumi Command (and
# the lab runner) starts a short loader that unpacks its stdin bundle into a
# private directory and calls ifbus_main DIR KIND; the bundle carries these
# scripts, the host's facts, the files to deploy and a manifest.
# Nothing here prints a secret: checker and health output passes ifbus_mask.

IFBUS_STATE=/var/lib/ifbus
IFBUS_STEP=${IFBUS_STEP:-step}
declare -a IFBUS_MASKS=()
declare -A FACT=()

ifbus_log() { printf 'ifbus %s: %s\n' "$IFBUS_STEP" "$*"; }
ifbus_fail() {
    printf 'ifbus %s: FAILED: %s\n' "$IFBUS_STEP" "$*" >&2
    exit 1
}

# Replace every secret of this host by [secret] (literal match, line by line).
ifbus_mask() {
    local line s
    while IFS= read -r line || [ -n "$line" ]; do
        for s in "${IFBUS_MASKS[@]}"; do line=${line//"$s"/[secret]}; done
        printf '%s\n' "$line"
    done
}

# Run a command; on failure print its output (masked, last 40 lines) and return its status.
ifbus_checked() {
    local out rc=0
    out=$("$@" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ]; then printf '%s\n' "$out" | tail -n 40 | ifbus_mask >&2; fi
    return "$rc"
}

# Poll until a command succeeds, at most SECONDS; quiet while it fails.
ifbus_poll() {
    local secs=$1
    shift
    local deadline=$((SECONDS + secs))
    while :; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

ifbus_read_facts() {
    local k v
    while IFS='=' read -r k v; do [ -n "$k" ] && FACT[$k]=$v; done <"$1"
}

ifbus_read_masks() {
    local b
    [ -f "$1" ] || return 0
    while IFS= read -r b; do [ -n "$b" ] && IFBUS_MASKS+=("$(printf %s "$b" | base64 -d)"); done <"$1"
}

ifbus_main() {
    IFBUS_W=$1
    local kind=$2
    ifbus_read_facts "$IFBUS_W/facts"
    ifbus_read_masks "$IFBUS_W/masks"
    IFBUS_STEP="${FACT[host]}:$kind"
    # shellcheck source=/dev/null
    for f in install validate health galera apply; do . "$IFBUS_W/lib/$f.sh"; done
    install -d -m 0700 "$IFBUS_STATE"
    case $kind in
        wait-ready) ifbus_wait_ready ;;
        install) ifbus_install ;;
        apply) ifbus_apply ;;
        galera-bootstrap) ifbus_galera_bootstrap ;;
        galera-join) ifbus_galera_join ;;
        db-schema) ifbus_db_schema ;;
        *) ifbus_fail "unknown step kind $kind" ;;
    esac
}

# Step 1: the host accepts SSH (we are here) and has finished booting.
ifbus_wait_ready() {
    local rc=0 state
    if command -v cloud-init >/dev/null 2>&1; then
        # exit 2 = "done with recoverable errors" (cloud-init >= 23.4): booted, keep going
        cloud-init status --wait >/dev/null 2>&1 || rc=$?
        [ "$rc" -eq 0 ] || [ "$rc" -eq 2 ] || ifbus_fail "cloud-init finished with errors: $(cloud-init status --long 2>&1 | tail -n 5)"
    fi
    state=$(timeout 600 systemctl is-system-running --wait 2>/dev/null) || true
    ifbus_log "host ready (systemd: ${state:-unknown})"
}
