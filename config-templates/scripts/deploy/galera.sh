# shellcheck shell=bash
# Galera cluster steps. Facts used: galera_peers (the other nodes' private
# addresses, comma-separated), galera_size. Rules (DOMAIN-FACTS 12):
# bootstrap exactly one node of a brand-new cluster; join the others one at a
# time; never bootstrap over existing cluster data; a node holding data but
# no cluster state is refused, never wiped.

IFBUS_GRASTATE=/var/lib/mysql/grastate.dat
IFBUS_ZERO_UUID=00000000-0000-0000-0000-000000000000

ifbus_grastate() { # KEY: a field of grastate.dat, empty when absent
    [ -f "$IFBUS_GRASTATE" ] || return 0
    awk -v k="$1:" '$1 == k { print $2 }' "$IFBUS_GRASTATE"
}

# Databases other than MariaDB's own: data a join or bootstrap must not lose.
ifbus_has_app_data() {
    local d
    for d in /var/lib/mysql/*/; do
        case $(basename "$d") in mysql | performance_schema | sys | '#innodb_redo' | '#innodb_temp') ;; *) return 0 ;; esac
    done
    return 1
}

ifbus_peer_up() { # is any other node's group communication port accepting connections?
    local ip
    for ip in ${FACT[galera_peers]//,/ }; do
        timeout 2 bash -c "exec 3<>/dev/tcp/$ip/${FACT[galera_port]}" 2>/dev/null && return 0
    done
    return 1
}

ifbus_galera_primary() {
    [ "$(mariadb -N -B -e "SHOW GLOBAL STATUS LIKE 'wsrep_cluster_status'" 2>/dev/null | cut -f2)" = Primary ]
}

# Debian enables mariadb.socket: systemd then holds 3306 and mariadbd cannot
# bind it (Galera start fails with "Address already in use"). A cluster node
# runs mariadbd itself.
ifbus_galera_no_socket() {
    local s
    for s in mariadb.socket mariadb-extra.socket; do
        if systemctl is-enabled --quiet "$s" 2>/dev/null || systemctl is-active --quiet "$s" 2>/dev/null; then
            systemctl disable --now --quiet "$s"
            ifbus_log "disabled $s (socket activation would hold the MariaDB port)"
        fi
    done
}

# Restart a running node for a config change: a single-node cluster has no
# peer to rejoin, so it is stopped cleanly (safe_to_bootstrap: 1) and re-bootstrapped.
ifbus_galera_restart() {
    ifbus_galera_no_socket
    if [ "${FACT[galera_size]}" = 1 ]; then
        systemctl stop mariadb && galera_new_cluster
    else
        systemctl restart mariadb
    fi
}

# The SST account mariabackup uses on the donor, from wsrep_sst_auth in the live option files.
ifbus_sst_account() {
    local auth user pw
    auth=$(cat /etc/mysql/conf.d/*.cnf /etc/mysql/mariadb.conf.d/*.cnf 2>/dev/null |
        sed -n 's/^[[:space:]]*wsrep[-_]sst[-_]auth[[:space:]]*=[[:space:]]*//p' | tail -n 1 | tr -d '"')
    [ -n "$auth" ] || return 0
    user=${auth%%:*}
    pw=${auth#*:}
    # stdin, not argv: the password never shows in ps
    printf "CREATE USER IF NOT EXISTS '%s'@'localhost' IDENTIFIED BY '%s';\nALTER USER '%s'@'localhost' IDENTIFIED BY '%s';\nGRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR ON *.* TO '%s'@'localhost';\n" \
        "$user" "$pw" "$user" "$pw" "$user" | ifbus_checked mariadb
}

ifbus_galera_bootstrap() {
    ifbus_galera_no_socket
    if systemctl is-active --quiet mariadb && ifbus_galera_primary; then
        ifbus_log "already a member of a Primary component"
    elif ifbus_peer_up; then
        ifbus_log "a peer is running: joining its cluster instead of bootstrapping"
        ifbus_checked systemctl start mariadb || ifbus_fail "mariadb did not start"
    else
        local uuid safe
        uuid=$(ifbus_grastate uuid)
        safe=$(ifbus_grastate safe_to_bootstrap)
        if [ -z "$uuid" ] || [ "$uuid" = "$IFBUS_ZERO_UUID" ]; then
            ! ifbus_has_app_data || ifbus_fail "refusing to bootstrap: /var/lib/mysql holds databases but no Galera state; recover by hand (README: Galera recovery)"
            ifbus_log "brand-new cluster: bootstrapping this node"
        elif [ "${FACT[galera_size]}" = 1 ] && [ "$safe" = 1 ]; then
            ifbus_log "single-node cluster stopped cleanly: bootstrapping it again"
        else
            ifbus_fail "refusing to bootstrap: this node holds cluster $uuid (safe_to_bootstrap: ${safe:-?}) and no peer is reachable; a full outage needs an operator (README: Galera recovery)"
        fi
        ifbus_checked galera_new_cluster || ifbus_fail "galera_new_cluster failed"
    fi
    IFBUS_HEALTH_SECONDS=600 ifbus_health galera || ifbus_fail "node did not reach Synced/Primary"
    ifbus_sst_account || ifbus_fail "could not create the SST account"
    systemctl enable --quiet mariadb
    ifbus_log "cluster up: $(ifbus_galera_status)"
}

ifbus_galera_join() {
    ifbus_galera_no_socket
    if systemctl is-active --quiet mariadb && ifbus_galera_healthy; then
        ifbus_log "already Synced"
    else
        local uuid
        uuid=$(ifbus_grastate uuid)
        if { [ -z "$uuid" ] || [ "$uuid" = "$IFBUS_ZERO_UUID" ]; } && ifbus_has_app_data; then
            ifbus_fail "refusing to join: /var/lib/mysql holds databases but no Galera state, a join would wipe them (README: Galera recovery)"
        fi
        ifbus_peer_up || ifbus_fail "no peer accepts Galera connections: nothing to join"
        ifbus_log "joining the cluster (a first join copies the data by SST)"
        ifbus_checked systemctl start mariadb || ifbus_fail "mariadb did not start"
    fi
    ifbus_health galera || ifbus_fail "node did not reach Synced"
    systemctl enable --quiet mariadb
    ifbus_log "member: $(ifbus_galera_status)"
}

# Schema and seed data, once: the bundle's SQL files in order, each idempotent.
ifbus_db_schema() {
    ifbus_galera_healthy || ifbus_fail "refusing to load the schema on a node that is not Synced: $(ifbus_galera_status)"
    local f n=0
    while IFS= read -r f; do
        [ -n "$f" ] || continue
        ifbus_checked mariadb <"$IFBUS_W/$f" || ifbus_fail "SQL $(basename "$f") failed"
        n=$((n + 1))
    done <"$IFBUS_W/sql-order"
    ifbus_log "schema and seed data applied ($n file(s))"
}
