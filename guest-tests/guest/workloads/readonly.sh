# Read-only export: reads work, every write fails with EROFS (the host checks its dir is unchanged).
. /workloads/common.sh
check_host_prepared
step "checker erofs"
checker erofs "$MNT" $([ "${xattr:-0}" = 1 ] && echo --xattr) || fail "checker erofs"
step "shell-level writes"
if echo x 2>/dev/null > "$MNT/shell-new"; then fail "creating a file succeeded"; fi
if touch "$MNT/ro-file" 2>/dev/null; then fail "touch succeeded"; fi
if dd if=/dev/zero of="$MNT/ro-file" bs=1 count=1 conv=notrunc 2>/dev/null; then fail "dd write succeeded"; fi
if mkdir "$MNT/shell-dir" 2>/dev/null; then fail "mkdir succeeded"; fi
out=$(touch "$MNT/ro-file" 2>&1); case "$out" in *"Read-only file system"*) ;; *) fail "touch error was not EROFS: $out" ;; esac
[ $FAILED = 0 ] && echo "vhostfsd-guest: every write refused with EROFS"
exit $FAILED
