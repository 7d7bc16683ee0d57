# shellcheck shell=bash
# Health checks, the same kinds the render tests use: each polls with a bound
# until the service answers on the address it serves. Called as
# ifbus_health KIND ARGS... (from the manifest's service table).
#   redis CONF IP PORT    PING with the requirepass read from CONF -> PONG
#   ng IP PORT            rtpengine ng "ping" -> "pong"
#   stun IP PORT          STUN binding request answered (turnutils_stunclient)
#   sip IP PORT           SIP OPTIONS over UDP answered with any final status line
#   opensips IP PORT      sip IP PORT when IP is up on this host; else (a backup proxy, whose VIP
#                         address keepalived holds down) OpenSIPS answers MI uptime over its FIFO
#   galera                wsrep_ready=ON, cluster Primary, node Synced
#   active UNIT           systemd reports the unit active

ifbus_redis_ping() {
    local pw
    pw=$(awk '$1 == "requirepass" { print $2 }' "$1" | tail -n 1)
    [ "$(REDISCLI_AUTH=$pw timeout 3 redis-cli --no-auth-warning -h "$2" -p "$3" ping 2>/dev/null)" = PONG ]
}

ifbus_ng_ping() {
    printf 'ifbus%s d7:command4:pinge' "$$" | timeout 3 socat -T2 - "UDP:$1:$2" 2>/dev/null | grep -q 'd6:result4:ponge'
}

ifbus_stun() {
    timeout 5 turnutils_stunclient -p "$2" "$1" 2>/dev/null | grep -q 'reflexive addr'
}

ifbus_sip_options() {
    local id="ifbus-health-$$-$RANDOM" src=${FACT[private_ip]}
    printf 'OPTIONS sip:%s:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\r\nMax-Forwards: 70\r\nFrom: <sip:health@%s>;tag=%s\r\nTo: <sip:%s:%s>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n' \
        "$1" "$2" "$src" "$id" "$src" "$$" "$1" "$2" "$id" |
        timeout 3 socat -T2 - "UDP:$1:$2,bind=$src" 2>/dev/null | head -n 1 | grep -Eq '^SIP/2\.0 [1-6][0-9][0-9] '
}

# The SIP check where the address is ours, MI where keepalived holds it down (this proxy is backup).
ifbus_opensips_alive() {
    if ip -o -4 addr show | grep -q " $1/"; then
        ifbus_sip_options "$1" "$2"
    else
        timeout 3 opensips-cli -x mi uptime >/dev/null 2>&1
    fi
}

ifbus_galera_status() {
    mariadb -N -B -e "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready','wsrep_cluster_status','wsrep_local_state_comment')" 2>/dev/null | sort | tr '\t\n' '= '
}

ifbus_galera_healthy() {
    [ "$(ifbus_galera_status)" = "wsrep_cluster_status=Primary wsrep_local_state_comment=Synced wsrep_ready=ON " ]
}

# ifbus_health KIND ARGS...: 0 when healthy within the bound, else 1 with a reason.
ifbus_health() {
    local kind=$1
    shift
    local bound=${IFBUS_HEALTH_SECONDS:-${FACT[health_seconds]:-60}}
    case $kind in
        redis) ifbus_poll "$bound" ifbus_redis_ping "$@" || { echo "redis at $2:$3 did not answer PING with PONG within ${bound}s" >&2; return 1; } ;;
        ng) ifbus_poll "$bound" ifbus_ng_ping "$@" || { echo "rtpengine at $1:$2 did not answer an ng ping within ${bound}s" >&2; return 1; } ;;
        stun) ifbus_poll "$bound" ifbus_stun "$@" || { echo "coturn at $1:$2 did not answer a STUN binding request within ${bound}s" >&2; return 1; } ;;
        sip) ifbus_poll "$bound" ifbus_sip_options "$@" || { echo "OpenSIPS at $1:$2 did not answer SIP OPTIONS within ${bound}s" >&2; return 1; } ;;
        opensips) ifbus_poll "$bound" ifbus_opensips_alive "$@" || { echo "OpenSIPS did not answer SIP OPTIONS at $1:$2 (or MI, where this proxy does not hold $1) within ${bound}s" >&2; return 1; } ;;
        galera)
            ifbus_poll "${IFBUS_GALERA_SECONDS:-600}" ifbus_galera_healthy ||
                { echo "MariaDB is not a Synced member of a Primary component: $(ifbus_galera_status)" >&2; return 1; }
            ;;
        active) ifbus_poll "$bound" systemctl is-active --quiet "$1" || { echo "$1 is not active: $(systemctl is-active "$1" 2>&1)" >&2; return 1; } ;;
        *) echo "unknown health check $kind" >&2; return 2 ;;
    esac
}
