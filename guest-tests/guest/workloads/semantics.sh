# POSIX semantics through the checker; xattr checks only when the daemon runs with --xattr.
. /workloads/common.sh
check_host_prepared
step "checker semantics (xattr=${xattr:-0} cache=${cache:-auto})"
checker semantics "$MNT" ${cache:+--cache "$cache"} $([ "${xattr:-0}" = 1 ] && echo --xattr) \
    $([ "${allow_mmap:-0}" = 1 ] && echo --allow-mmap) || fail "checker semantics"

# Locks the host holds during the boot (runner.py); required to conflict when locks=1.
step "host locks (expected: ${locks:-0})"
checker locks "$MNT/locks" $([ "${locks:-0}" = 1 ] && echo --expect) || fail "checker locks"

# Host changes seen by the guest: the guest asks (sync/request-N), the runner changes the file on
# the host and answers (sync/done-N). With cache=auto the guest may keep attributes for 1 s.
step "host changes are visible in the guest"
mkdir -p "$MNT/sync" && echo "guest v1" > "$MNT/sync/coherent.txt"
[ "$(cat "$MNT/sync/coherent.txt")" = "guest v1" ] || fail "coherent.txt first read"
ls "$MNT/sync" > /dev/null
: > "$MNT/sync/request-1"
i=0
while [ ! -e "$MNT/sync/done-1" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
if [ -e "$MNT/sync/done-1" ]; then
    sleep 1.2
    got=$(cat "$MNT/sync/coherent.txt")
    [ "$got" = "changed on the host, longer than before" ] || fail "host change not visible in the guest: '$got'"
    [ -e "$MNT/sync/host-created" ] || fail "file created on the host not visible in the guest"
    [ ! -e "$MNT/sync/request-1" ] || fail "file removed on the host still visible in the guest"
else
    fail "the host did not answer sync/request-1 within 30 s"
fi
write_for_host
exit $FAILED
