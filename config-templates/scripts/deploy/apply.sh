# shellcheck shell=bash
# Steps 3 and 4 in one remote command: stage the bundle's files, validate the
# changed ones with their daemon's checker, back up and swap them in (each by
# an atomic rename), restart only the services whose files changed, run the
# health checks, and on a failed health check put the previous files back and
# restart again. A failed validation leaves live files and services untouched.
#
# manifest (tab-separated): path mode owner group service validator sha256 entry
# services (tab-separated): unit action health   (action: restart|reload|galera)

ifbus_same() { # PATH MODE OWNER GROUP: live file equals the staged one, content and metadata
    [ -f "$1" ] && cmp -s "$1" "$IFBUS_STAGE$1" &&
        [ "$(stat -c '%a %U %G' "$1")" = "$(printf '%o' "$((8#$2))") $3 $4" ]
}

ifbus_swap_in() { # SRC DEST: replace DEST atomically with a copy of SRC (mode and owner kept)
    install -d -m 0755 "$(dirname "$2")"
    cp -a "$1" "$2.ifbus-new"
    mv -fT "$2.ifbus-new" "$2"
}

ifbus_unit_action() { # UNIT ACTION: apply a changed config to a unit
    local active=0
    systemctl is-active --quiet "$1" && active=1
    case $2 in
        galera) [ "$active" -eq 0 ] || ifbus_galera_restart ;;
        reload) if [ "$active" -eq 1 ]; then systemctl reload "$1"; else systemctl enable --quiet --now "$1"; fi ;;
        *) if [ "$active" -eq 1 ]; then systemctl restart "$1"; else systemctl enable --quiet --now "$1"; fi ;;
    esac
}

ifbus_apply() {
    IFBUS_STAGE=$IFBUS_STATE/staging
    rm -rf "$IFBUS_STAGE"
    install -d -m 0700 "$IFBUS_STAGE"
    local -A SVC=() VALID=() TOUCHED=() ACTION=() HEALTH=()
    local -a changed=() units=() restarted=() started=()
    local path mode owner group svc validator sum entry
    while IFS=$'\t' read -r path mode owner group svc validator sum entry; do
        [ -n "$path" ] || continue
        SVC[$path]=$svc
        VALID[$path]=$validator
        getent passwd "$owner" >/dev/null || ifbus_fail "owner $owner of $path does not exist (did the install step run?)"
        install -D -m "$mode" -o "$owner" -g "$group" "$IFBUS_W/$entry" "$IFBUS_STAGE$path"
        ifbus_same "$path" "$mode" "$owner" "$group" || changed+=("$path")
    done <"$IFBUS_W/manifest"
    local unit action health
    while IFS=$'\t' read -r unit action health; do
        [ -n "$unit" ] || continue
        units+=("$unit")
        ACTION[$unit]=$action
        HEALTH[$unit]=$health
    done <"$IFBUS_W/services"

    local backup="" reload=0
    if [ "${#changed[@]}" -gt 0 ]; then
        for path in "${changed[@]}"; do
            [ "${VALID[$path]}" = none ] && continue
            ifbus_validate "${VALID[$path]}" "$IFBUS_STAGE$path" "$path" ||
                { rm -rf "$IFBUS_STAGE"; ifbus_fail "$path rejected by ${VALID[$path]} check; live files unchanged, nothing restarted"; }
        done
        backup=$IFBUS_STATE/backup/$(date -u +%Y%m%dT%H%M%SZ)-$$
        install -d -m 0700 "$backup/files"
        : >"$backup/created"
        for path in "${changed[@]}"; do
            if [ -e "$path" ]; then
                install -d -m 0700 "$backup/files$(dirname "$path")"
                cp -a "$path" "$backup/files$path"
            else
                echo "$path" >>"$backup/created"
            fi
        done
        for path in "${changed[@]}"; do
            ifbus_swap_in "$IFBUS_STAGE$path" "$path"
            [ "${SVC[$path]}" = none ] || TOUCHED[${SVC[$path]}]=1
            case $path in /etc/systemd/* | /lib/systemd/* | /usr/lib/systemd/*) reload=1 ;; esac
        done
        # keep the ten newest backups
        ls -1d "$IFBUS_STATE"/backup/*/ 2>/dev/null | sort | head -n -10 | xargs -r rm -rf
        [ "$reload" -eq 0 ] || systemctl daemon-reload
        ifbus_log "changed ${#changed[@]} file(s): ${changed[*]} (previous versions in $backup)"
    else
        ifbus_log "no file changed"
    fi
    rm -rf "$IFBUS_STAGE"

    local failure=""
    local -a checked=()
    for unit in "${units[@]}"; do
        if [ -n "${TOUCHED[$unit]:-}" ] && [ "${ACTION[$unit]}" = galera ] && ! systemctl is-active --quiet "$unit"; then
            ifbus_log "$unit is not running: the Galera steps start it"
        elif [ -n "${TOUCHED[$unit]:-}" ]; then
            if ifbus_unit_action "$unit" "${ACTION[$unit]}" 2>"$IFBUS_STATE/action.err"; then
                restarted+=("$unit")
            else
                failure="$unit failed to (re)start: $(tail -n 5 "$IFBUS_STATE/action.err" | ifbus_mask)"
                break
            fi
        elif [ "${ACTION[$unit]}" != galera ] && ! systemctl is-active --quiet "$unit"; then
            systemctl enable --quiet --now "$unit" 2>"$IFBUS_STATE/action.err" ||
                { failure="$unit failed to start: $(tail -n 5 "$IFBUS_STATE/action.err" | ifbus_mask)"; break; }
            started+=("$unit")
        fi
        [ "${ACTION[$unit]}" = galera ] || systemctl enable --quiet "$unit"
    done
    rm -f "$IFBUS_STATE/action.err"
    if [ -z "$failure" ]; then
        for unit in "${units[@]}"; do
            # a Galera node that is not running yet is started by the galera steps
            if [ "${ACTION[$unit]}" = galera ] && ! systemctl is-active --quiet "$unit"; then continue; fi
            # shellcheck disable=SC2086
            local why
            if ! why=$(ifbus_health ${HEALTH[$unit]} 2>&1); then
                failure="health check of $unit failed: $(printf '%s' "$why" | ifbus_mask)"
                break
            fi
            checked+=("$unit")
        done
    fi
    if [ -n "$failure" ]; then
        [ -n "$backup" ] || ifbus_fail "$failure (no file had changed, nothing to roll back)"
        ifbus_rollback "$backup" "${changed[@]}"
        local u
        for u in "${!TOUCHED[@]}"; do ifbus_unit_action "$u" "${ACTION[$u]}" >/dev/null 2>&1 || true; done
        ifbus_fail "$failure; previous files restored from $backup and ${!TOUCHED[*]} restarted"
    fi
    [ "${#restarted[@]}" -eq 0 ] || ifbus_log "restarted: ${restarted[*]}"
    [ "${#started[@]}" -eq 0 ] || ifbus_log "started (was not running): ${started[*]}"
    ifbus_log "healthy: ${checked[*]:-no running service to check}"
}

ifbus_rollback() { # BACKUP PATH...: put the previous version of each path back
    local backup=$1 path reload=0
    shift
    for path in "$@"; do
        if grep -qxF -- "$path" "$backup/created"; then
            rm -f -- "$path"
        else
            ifbus_swap_in "$backup/files$path" "$path"
        fi
        case $path in /etc/systemd/* | /lib/systemd/* | /usr/lib/systemd/*) reload=1 ;; esac
    done
    [ "$reload" -eq 0 ] || systemctl daemon-reload
}
