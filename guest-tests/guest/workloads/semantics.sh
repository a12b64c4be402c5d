# POSIX semantics through the checker; xattr checks only when the daemon runs with --xattr.
. /workloads/common.sh
check_host_prepared
step "checker semantics (xattr=${xattr:-0} cache=${cache:-auto})"
checker semantics "$MNT" ${cache:+--cache "$cache"} $([ "${xattr:-0}" = 1 ] && echo --xattr) \
    $([ "${allow_mmap:-0}" = 1 ] && echo --allow-mmap) || fail "checker semantics"
write_for_host
exit $FAILED
