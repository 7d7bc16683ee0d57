# shellcheck shell=bash
# Validators: each checks one staged file with the daemon's own parser before
# it may replace the live one. Called as ifbus_validate KIND STAGED LIVE; a
# non-zero return carries the checker's (masked) message on stderr.
#   opensips-cfg     opensips -C -f (syntax, module parameters, function arguments)
#   keepalived-conf  keepalived --config-test
#   redis-conf       redis-server started on the staged file in a throw-away network namespace
#   rtpengine-conf   rtpengine started on the staged file in a throw-away network namespace
#   coturn-conf      turnserver started likewise; coturn has no checker and only logs
#                    "Bad configuration format" for unknown options, so that line fails it
#   mariadb-cnf      mariadbd --help --verbose over the full option files with the staged ones in place
#   shell            bash -n;  x509  openssl x509;  private-key  openssl pkey;  none  nothing

# Start a daemon on the staged config inside a new network namespace that holds
# only loopback plus this host's private address, so it binds the same
# addresses as the live one without touching it or its clients. Ready when
# READY appears in its output; invalid when it exits first or prints BAD.
# unshare --fork ignores SIGTERM; SIGKILL to it takes the daemon along (--kill-child).
ifbus_trial_start() {
    local secs=$1 ready=$2 bad=$3
    shift 3
    local log pid deadline=$((SECONDS + secs))
    log=$(mktemp "$IFBUS_TRIAL_DIR/trial.XXXXXX")
    IFBUS_TRIAL_IP=${FACT[private_ip]} unshare --net --fork --kill-child -- bash -c \
        'ip link set lo up && ip addr add "$IFBUS_TRIAL_IP/32" dev lo && exec "$@"' trial "$@" >"$log" 2>&1 &
    pid=$!
    while :; do
        if [ -n "$bad" ] && grep -Eq "$bad" "$log"; then
            kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
            grep -E "$bad" "$log" | sort -u | head -n 20 | ifbus_mask >&2
            return 1
        fi
        if grep -Eq "$ready" "$log"; then
            kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null || true
            tail -n 30 "$log" | ifbus_mask >&2
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
            echo "no readiness ('$ready') within ${secs}s; last output:" >&2
            tail -n 20 "$log" | ifbus_mask >&2
            return 1
        fi
        sleep 0.2
    done
}

# The option files mariadbd reads (conf.d, then mariadb.conf.d, each sorted),
# live ones replaced or joined by staged ones, concatenated into one file.
ifbus_mariadb_options() {
    local out=$1 d f
    : >"$out"
    for d in /etc/mysql/conf.d /etc/mysql/mariadb.conf.d; do
        for f in $( (ls "$d"/*.cnf 2>/dev/null; ls "$IFBUS_STAGE$d"/*.cnf 2>/dev/null) | xargs -r -n1 basename | sort -u); do
            if [ -f "$IFBUS_STAGE$d/$f" ]; then cat "$IFBUS_STAGE$d/$f"; else cat "$d/$f"; fi >>"$out"
            echo >>"$out"
        done
    done
    # a staged option file elsewhere (not included by my.cnf) is checked on its own
    case $2 in /etc/mysql/conf.d/* | /etc/mysql/mariadb.conf.d/*) ;; *) cat "$3" >>"$out" ;; esac
}

ifbus_validate() {
    local kind=$1 staged=$2 live=$3
    IFBUS_TRIAL_DIR=$(mktemp -d "$IFBUS_STATE/trial.XXXXXX")
    local rc=0
    case $kind in
        none) ;;
        shell) ifbus_checked bash -n "$staged" || rc=$? ;;
        x509) ifbus_checked openssl x509 -noout -in "$staged" || rc=$? ;;
        private-key) ifbus_checked openssl pkey -noout -in "$staged" || rc=$? ;;
        opensips-cfg)
            local bin
            bin=$(command -v opensips || echo /usr/sbin/opensips)
            ifbus_checked "$bin" -C -f "$staged" || rc=$?
            ;;
        keepalived-conf)
            # the scripts it names may arrive in this same step (a first deploy): check against their staged copies
            local conf="$IFBUS_TRIAL_DIR/keepalived.conf" p
            cp "$staged" "$conf"
            while IFS=$'\t' read -r p _; do
                if [ -n "$p" ] && [ "$p" != "$live" ] && [ -f "$IFBUS_STAGE$p" ]; then sed -i "s#$p\([\" ]\|\$\)#$IFBUS_STAGE$p\1#g" "$conf"; fi
            done <"$IFBUS_W/manifest"
            ifbus_checked keepalived --config-test --log-console -f "$conf" || rc=$?
            ;;
        redis-conf)
            chmod 0755 "$IFBUS_TRIAL_DIR"
            ifbus_trial_start 20 'Ready to accept connections' 'FATAL CONFIG FILE ERROR' \
                redis-server "$staged" --dir "$IFBUS_TRIAL_DIR" --pidfile "$IFBUS_TRIAL_DIR/pid" --logfile '' \
                --daemonize no --supervised no --save '' --appendonly no || rc=$?
            ;;
        rtpengine-conf)
            ifbus_trial_start 20 'Startup complete' '' \
                rtpengine --config-file="$staged" --foreground --log-stderr --table=-1 \
                --pidfile="$IFBUS_TRIAL_DIR/pid" || rc=$?
            ;;
        coturn-conf)
            ifbus_trial_start 20 'Total General servers' 'Bad configuration format|CONFIG ERROR|CONFIGURATION ALERT' \
                turnserver -c "$staged" --log-file stdout --pidfile "$IFBUS_TRIAL_DIR/pid" \
                --userdb "$IFBUS_TRIAL_DIR/turndb" || rc=$?
            ;;
        mariadb-cnf)
            ifbus_mariadb_options "$IFBUS_TRIAL_DIR/all.cnf" "$live" "$staged"
            ifbus_checked timeout 60 mariadbd --defaults-file="$IFBUS_TRIAL_DIR/all.cnf" --help --verbose || rc=$?
            ;;
        *) echo "unknown validator $kind" >&2; rc=2 ;;
    esac
    rm -rf "$IFBUS_TRIAL_DIR"
    return "$rc"
}
