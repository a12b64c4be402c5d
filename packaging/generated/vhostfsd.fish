complete -c vhostfsd -l shared-dir -d 'Shared directory path' -r -F
complete -c vhostfsd -l tag -d 'Tag the guest mounts (`mount -t virtiofs TAG`). When given, the backend offers the virtio-fs config space with this tag; QEMU\'s vhost-user-fs-pci takes the tag from its own command line instead' -r
complete -c vhostfsd -l socket-path -d 'vhost-user socket path to listen on. Without it and without --fd, the daemon serves the socket systemd passes (socket activation, LISTEN_FDS)' -r -F
complete -c vhostfsd -l mount -d 'Host mount mode: mount the shared directory at this directory through /dev/fuse (allow_other, default_permissions) instead of serving a VM; SIGTERM/SIGINT unmount. Reader threads: --thread-pool-size, or one per CPU when 0. Needs root' -r -F
complete -c vhostfsd -l passthrough -d 'Host mount mode: kernel FUSE passthrough (Linux >= 6.9). Reads and writes of an open file go from the kernel straight to the host file, not through the daemon. `auto` uses it when the kernel offers it; `on` fails when it does not; never with --writeback' -r -f -a "auto\t'Use kernel passthrough when the kernel offers it, serve reads and writes otherwise'
on\t'Require kernel passthrough: the mount fails when the kernel does not offer it'
off\t'Serve every read and write in the daemon'"
complete -c vhostfsd -l io-uring -d 'Host mount mode: FUSE over io_uring (Linux >= 6.14 with CONFIG_FUSE_IO_URING). Requests arrive in per-CPU io_uring queues instead of read/write on /dev/fuse. The kernel enables it with `echo Y > /sys/module/fuse/parameters/enable_uring`. `auto` uses it when the kernel enables it; `on` fails when it does not' -r -f -a "auto\t'Use it when the kernel enables it, read and write /dev/fuse otherwise'
on\t'Require it: fail when the kernel does not enable it'
off\t'Read and write /dev/fuse'"
complete -c vhostfsd -l socket-group -d 'Name of the group that owns the socket (libvirt uses this); the socket is then mode 0770, owner and group may connect. Without it the socket is mode 0700, owner only' -r
complete -c vhostfsd -l fd -d 'File descriptor of an already listening vhost-user socket (instead of --socket-path)' -r
complete -c vhostfsd -l thread-pool-size -d 'Maximum number of worker threads per request queue; 0 runs requests on the queue\'s own thread' -r
complete -c vhostfsd -l poll-max-us -d 'Longest time, in microseconds, a queue\'s worker polls its empty ring for the guest\'s next request before it sleeps until a kick. The time adapts between 0 and this as QEMU\'s poll-max-ns does: it grows while requests come soon after the ring empties and drops to 0 on an idle queue. 0 turns polling off' -r
complete -c vhostfsd -l num-request-queues -d 'Number of request queues offered to the guest (besides the high-priority queue)' -r
complete -c vhostfsd -l queue-size -d 'Size of each virtqueue' -r
complete -c vhostfsd -l dax-window -d 'Size of the DAX window the guest maps files into, e.g. 1G or 512M (a multiple of 2M; 0 = no DAX). Needs a frontend with vhost-user shared-memory regions (QEMU >= 11.1 with vhost-user-test-device-pci and --tag; see docs/dax.md). The guest mounts with `-o dax=always` or `-o dax=inode`' -r
complete -c vhostfsd -l dax-policy -d 'Which files the guest gets in DAX mode when it mounts with `-o dax=inode` (or with no dax option); with `dax=always` every file is' -r -f -a "always\t'Every regular file'
never\t'No file'
large-files\t'Regular files of at least [`LARGE_FILE`] bytes (2 MiB, one guest DAX chunk)'
attr\t'Files with the host inode flag FS_DAX_FL (`chattr +x FILE`; `lsattr` shows `x`)'"
complete -c vhostfsd -l xattrmap -d 'Rules to map extended attribute names (not implemented yet: refused)' -r
complete -c vhostfsd -l sandbox -d 'Sandbox mode' -r -f -a "namespace\t'New mount, pid and network namespaces, then pivot_root into the shared directory'
chroot\t'chroot into the shared directory (needs root, no namespaces)'
none\t'No sandbox: the shared directory is still the limit of what the guest can reach'"
complete -c vhostfsd -l seccomp -d 'Action on a syscall the seccomp filter does not allow' -r -f -a "none\t'No filter at all'
kill\t'Kill the whole process (SECCOMP_RET_KILL_PROCESS)'
log\t'Allow the call and log it to the kernel audit log (SECCOMP_RET_LOG)'
trap\t'Raise SIGSYS (SECCOMP_RET_TRAP); the default SIGSYS action ends the process'"
complete -c vhostfsd -l inode-file-handles -d 'Keep inodes as file handles rather than O_PATH fds, so a known inode costs no open fd (the daemon then keeps CAP_DAC_READ_SEARCH)' -r -f -a "never\t'Keep an O_PATH fd per inode (default)'
prefer\t'Use file handles where the host filesystem supports them'
mandatory\t'Fail lookups that cannot be kept as a file handle'"
complete -c vhostfsd -l inode-fd-cache -d 'Most O_PATH fds kept open for recently used inodes held as file handles, so that a GETATTR or a LOOKUP in a busy directory does not reopen the inode by its handle each time. Each fd is closed 0.5-1 s after its last use; at most a quarter of the open-file limit. 0 reopens inodes for every use (nothing stays open)' -r
complete -c vhostfsd -l cache -d 'Cache policy' -r -f -a "never\t'Never cache: every access goes to the daemon, files open with direct I/O'
metadata\t'Cache metadata only; file data is not cached'
auto\t'Cache metadata and data with a short timeout (default)'
always\t'Cache metadata and data for a long time'"
complete -c vhostfsd -l migration-mode -d 'How the source describes inodes to the migration destination: find-paths (their paths, read from /proc/self/fd) or file-handles (file handles: source and destination must use the same shared directory on the same filesystem, and the destination needs CAP_DAC_READ_SEARCH). Ignored on the destination' -r -f -a "find-paths\t'A path relative to the shared directory, from `/proc/self/fd`'
file-handles\t'A file handle: source and destination must share the very same filesystem, and the destination needs CAP_DAC_READ_SEARCH'"
complete -c vhostfsd -l migration-on-error -d 'What the migration destination does with an inode or handle it cannot restore: abort (fail the migration; the guest goes on on the source) or guest-error (finish the migration; the guest gets errors for that file). Ignored on the source' -r -f -a "abort\t'Fail the migration: the frontend resumes the guest on the source'
guest-error\t'Go on; the guest gets EBADF for that node and its handles'"
complete -c vhostfsd -l rlimit-nofile -d 'Maximum number of open files (default: the hard limit, or 1,000,000 if lower)' -r
complete -c vhostfsd -l log-level -d 'Log level' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''
off\t''"
complete -c vhostfsd -l modcaps -d 'Change the capabilities the daemon keeps once set up: `+cap` keeps one more, `-cap` drops one, joined by `:` (e.g. `--modcaps=+sys_admin:-mknod`). Kept by default: chown, dac_override, fowner, fsetid, setgid, setuid, mknod, setfcap, and dac_read_search when inodes are file handles' -r
complete -c vhostfsd -l uid-map -d 'Run the namespace sandbox in a new user namespace whose uids `namespace_uid..` are the host\'s `host_uid..` (`:namespace_uid:host_uid:count:`, e.g. `:0:100000:65536:`); an unprivileged user gets the range from /etc/subuid through newuidmap. Needs --gid-map too' -r
complete -c vhostfsd -l gid-map -d 'The gid range of the user namespace (`:namespace_gid:host_gid:count:`), through newgidmap and /etc/subgid for an unprivileged user' -r
complete -c vhostfsd -l translate-uid -d 'Translate uids between guest and host inside the daemon (caller credentials, chown, attributes shown to the guest): `TYPE:SOURCE:TARGET:COUNT` with TYPE `guest` (guest to host), `host` (host to guest), `squash-guest`, `squash-host`, `map` (both ways), or `forbid-guest:SOURCE:COUNT`. Repeatable; the first matching rule wins, ids no rule covers pass unchanged' -r
complete -c vhostfsd -l translate-gid -d 'Translate gids, as --translate-uid does uids' -r
complete -c vhostfsd -s o -d 'Legacy comma-separated options: source=DIR, cache=POLICY, xattr, no_xattr, flock, no_flock, posix_lock, no_posix_lock, readdirplus, no_readdirplus, writeback, no_writeback, allow_direct_io, no_allow_direct_io, announce_submounts, log_level=L, timeout=SECS, killpriv_v2, no_killpriv_v2, sandbox=MODE' -r
complete -c vhostfsd -l xattr -d 'Serve extended attributes'
complete -c vhostfsd -l posix-acl -d 'Serve POSIX ACLs (implies --xattr)'
complete -c vhostfsd -l allow-suid-dev -d 'With --sandbox namespace, do not mount the shared directory nosuid,nodev in the sandbox (by default device nodes and setuid files in the share are inert there)'
complete -c vhostfsd -l announce-submounts -d 'Tell the guest about submounts of the shared directory, so it shows them as separate mounts with their own st_dev'
complete -c vhostfsd -l allow-direct-io -d 'Honour O_DIRECT opens from the guest (otherwise the flag is dropped on the host)'
complete -c vhostfsd -l writeback -d 'Let the guest use its writeback cache'
complete -c vhostfsd -l no-readdirplus -d 'Do not offer READDIRPLUS'
complete -c vhostfsd -l readonly -d 'Export the directory read-only: every modification answers EROFS'
complete -c vhostfsd -l allow-mmap -d 'Allow shared mmap of files opened with direct I/O (--cache=never)'
complete -c vhostfsd -l killpriv-v2 -d 'Offer FUSE_HANDLE_KILLPRIV_V2 (the daemon clears setuid/setgid bits itself)'
complete -c vhostfsd -l no-killpriv-v2 -d 'Do not offer FUSE_HANDLE_KILLPRIV_V2'
complete -c vhostfsd -l migration-verify-handles -d 'find-paths only: the source attaches each inode\'s file handle and the destination checks it opened the very same inode (source and destination must use the same filesystem). Guards against files replaced during migration'
complete -c vhostfsd -l migration-confirm-paths -d 'find-paths only: the source checks at switch-over that each path still names its inode (longer downtime; guards against third parties renaming files meanwhile)'
complete -c vhostfsd -l syslog -d 'Log to syslog instead of stderr'
complete -c vhostfsd -l print-capabilities -d 'Print the vhost-user backend capabilities as JSON and exit'
complete -c vhostfsd -s f -d 'Stay in the foreground (always the case; accepted for compatibility)'
complete -c vhostfsd -s d -d 'Debug logging (same as --log-level debug; accepted for compatibility)'
complete -c vhostfsd -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vhostfsd -s V -l version -d 'Print version'
