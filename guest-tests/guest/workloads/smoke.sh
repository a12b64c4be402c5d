# Short smoke workload (used for the reconnect case): host files in, guest files out.
. /workloads/common.sh
check_host_prepared
write_for_host
ls -la "$MNT" >/dev/null || fail "ls"
exit $FAILED
