//! The seccomp filter (`--seccomp kill|log|trap|none`): the serving process may make only
//! the system calls listed here; any other one kills it (default), is logged to the
//! kernel's audit log, or raises SIGSYS.
//!
//! This file is the one home of the allowlist. Each group names the code path that needs
//! it; a feature that makes a new system call at run time adds it to its group here (or a
//! new group, listed in `GROUPS`), and the whole test suite runs with the default
//! `--seccomp kill`, so a missing entry fails a test. How the list was found and checked:
//! `--seccomp log` while running every integration test and guest test, reading the
//! kernel's `type=1326` audit records (see docs/threat-model.md).
//!
//! The filter is installed after the sandbox and the capability drop, while the process is
//! still single-threaded, so every thread started later inherits it. It matches system call
//! numbers only (as virtiofsd's does); argument checks are left to the capability set and
//! the sandbox.

use std::collections::BTreeMap;
use std::fmt;

use seccompiler::{
    BpfProgram, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

use crate::oslib::{file_flags, fusedev, xattr};

/// What happens on a system call outside the allowlist (`--seccomp`). The variants' doc
/// comments are the `--help` text of each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeccompAction {
    /// No filter at all.
    None,
    /// Kill the whole process (SECCOMP_RET_KILL_PROCESS).
    Kill,
    /// Allow the call and log it to the kernel audit log (SECCOMP_RET_LOG).
    Log,
    /// Raise SIGSYS (SECCOMP_RET_TRAP); the default SIGSYS action ends the process.
    Trap,
}

impl fmt::Display for SeccompAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Kill => "kill",
            Self::Log => "log",
            Self::Trap => "trap",
        })
    }
}

/// Errors building or installing the filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("cannot build the seccomp filter for this architecture")]
    Build(#[source] seccompiler::BackendError),
    #[error("cannot compile the seccomp filter")]
    Compile(#[source] seccompiler::BackendError),
    #[error(
        "cannot install the seccomp filter: check that the kernel has CONFIG_SECCOMP_FILTER \
         and that a container runtime does not forbid seccomp(2); or pass --seccomp none"
    )]
    Install(#[source] seccompiler::Error),
}

/// One group of allowed system calls and the code path that needs them.
struct Group {
    /// Who makes these calls.
    why: &'static str,
    calls: &'static [libc::c_long],
}

/// Rust's standard library, the allocator, threads and process exit.
const RUNTIME: Group = Group {
    why: "std: memory, threads, futexes, time, randomness, exit",
    calls: &[
        libc::SYS_brk,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_clone,
        libc::SYS_clone3,
        libc::SYS_set_robust_list,
        libc::SYS_rseq,
        libc::SYS_futex,
        libc::SYS_sched_getaffinity,
        libc::SYS_sched_yield,
        libc::SYS_getrandom,
        libc::SYS_clock_gettime,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_gettid,
        libc::SYS_getpid,
        libc::SYS_prctl,
        libc::SYS_exit,
        libc::SYS_exit_group,
        libc::SYS_restart_syscall,
    ],
};

/// Signals: SIGTERM/SIGINT arrive through a signalfd; std and panics use the rest.
const SIGNALS: Group = Group {
    why: "signalfd for SIGTERM/SIGINT, thread signal masks, panic abort",
    calls: &[
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_sigaltstack,
        libc::SYS_signalfd4,
        libc::SYS_tgkill,
    ],
};

/// Log lines to stderr or syslog.
const LOGGING: Group = Group {
    why: "logger: stderr lines, syslog socket",
    calls: &[
        libc::SYS_write,
        libc::SYS_socket,
        libc::SYS_connect,
        libc::SYS_sendto,
    ],
};

/// The vhost-user connection: accept, messages with fds, epoll loops, eventfds, guest
/// memory mappings, and waiting for the next frontend.
const VHOST_USER: Group = Group {
    why: "vhost-user: socket, messages with fds, epoll workers, kicks and calls",
    calls: &[
        libc::SYS_accept4,
        libc::SYS_recvmsg,
        libc::SYS_sendmsg,
        libc::SYS_shutdown,
        libc::SYS_getsockopt,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_epoll_create1,
        libc::SYS_epoll_ctl,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait,
        libc::SYS_eventfd2,
        libc::SYS_read,
        libc::SYS_close,
        libc::SYS_fcntl,
    ],
};

/// The passthrough filesystem: every FUSE request's host calls.
const FILESYSTEM: Group = Group {
    why: "passthrough: lookups, attributes, directories, file I/O, links, sync",
    calls: &[
        libc::SYS_openat,
        libc::SYS_statx,
        libc::SYS_newfstatat,
        libc::SYS_fstat,
        libc::SYS_fstatfs,
        libc::SYS_statfs,
        libc::SYS_getdents64,
        libc::SYS_lseek,
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_preadv,
        libc::SYS_pwritev,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_fallocate,
        libc::SYS_ftruncate,
        libc::SYS_fsync,
        libc::SYS_fdatasync,
        libc::SYS_syncfs,
        libc::SYS_copy_file_range,
        libc::SYS_mkdirat,
        libc::SYS_mknodat,
        libc::SYS_symlinkat,
        libc::SYS_readlinkat,
        libc::SYS_linkat,
        libc::SYS_unlinkat,
        libc::SYS_renameat2,
        // glibc's renameat2() with no flags makes the older renameat call.
        #[cfg(target_arch = "x86_64")]
        libc::SYS_renameat,
        libc::SYS_fchmod,
        libc::SYS_fchmodat,
        libc::SYS_fchownat,
        libc::SYS_utimensat,
        libc::SYS_faccessat,
        libc::SYS_faccessat2,
        libc::SYS_dup,
    ],
};

/// Extended attributes (`--xattr`): the `*xattrat` calls on O_PATH fds (Linux 6.13),
/// else through /proc/self/fd paths or open fds.
const XATTR: Group = Group {
    why: "xattr requests and setuid/capability clearing",
    calls: &[
        xattr::nr::SETXATTRAT,
        xattr::nr::GETXATTRAT,
        xattr::nr::LISTXATTRAT,
        xattr::nr::REMOVEXATTRAT,
        libc::SYS_getxattr,
        libc::SYS_setxattr,
        libc::SYS_listxattr,
        libc::SYS_removexattr,
        libc::SYS_fgetxattr,
        libc::SYS_fsetxattr,
        libc::SYS_flistxattr,
        libc::SYS_fremovexattr,
    ],
};

/// POSIX (OFD) and flock locks served on the host.
const LOCKS: Group = Group {
    why: "GETLK/SETLK/SETLKW (fcntl OFD locks) and flock",
    calls: &[libc::SYS_flock],
};

/// Running each request as its guest caller.
const CREDENTIALS: Group = Group {
    why: "per-thread caller credentials, umask and cwd",
    calls: &[
        libc::SYS_setresuid,
        libc::SYS_setresgid,
        libc::SYS_setgroups,
        libc::SYS_getgroups,
        libc::SYS_geteuid,
        libc::SYS_getegid,
        libc::SYS_unshare,
        libc::SYS_umask,
        libc::SYS_fchdir,
        libc::SYS_capget,
    ],
};

/// Inodes held as file handles (`--inode-file-handles`).
const FILE_HANDLES: Group = Group {
    why: "name_to_handle_at / open_by_handle_at",
    calls: &[libc::SYS_name_to_handle_at, libc::SYS_open_by_handle_at],
};

/// Host mount mode (`--mount`): reading and answering /dev/fuse, unmounting at exit. Its
/// ioctls are allowed only with the requests in [`HOST_MOUNT_IOCTLS`].
const HOST_MOUNT: Group = Group {
    why: "host mount mode: /dev/fuse reads and replies, unmount at exit",
    calls: &[libc::SYS_umount2],
};

/// FUSE over io_uring in host mount mode (`--io-uring auto|on`): one small ring per queue
/// thread carrying FUSE_IO_URING_CMD_REGISTER / COMMIT_AND_FETCH commands and a poll on the
/// stop eventfd (src/oslib/uring.rs). Found by running tests/host_uring.rs under
/// `--seccomp kill`: io_uring_setup (425) killed the daemon. Operations submitted through
/// the ring are not seen by this filter; the ring only carries those two kinds of entry.
const IO_URING: Group = Group {
    why: "host mount mode over io_uring: ring setup, submit and wait",
    calls: &[
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ],
};

/// The ioctl requests every mode may make (ioctl is allowed with these requests only):
/// FS_IOC_GETFLAGS, read by `--dax-policy attr` to find files marked DAX.
const IOCTLS: &[libc::c_ulong] = &[file_flags::FS_IOC_GETFLAGS];

/// The ioctl requests host mount mode adds on /dev/fuse: FUSE_DEV_IOC_CLONE and the FUSE
/// passthrough backing ids.
const HOST_MOUNT_IOCTLS: &[libc::c_ulong] = &[
    fusedev::FUSE_DEV_IOC_CLONE,
    fusedev::FUSE_DEV_IOC_BACKING_OPEN,
    fusedev::FUSE_DEV_IOC_BACKING_CLOSE,
];

/// Every group every mode needs, in the order above. A feature with its own calls (DAX
/// window mappings, io_uring, migration) adds its group here, or to [`Features`] when only
/// some modes make them.
const GROUPS: &[Group] = &[
    RUNTIME,
    SIGNALS,
    LOGGING,
    VHOST_USER,
    FILESYSTEM,
    XATTR,
    LOCKS,
    CREDENTIALS,
    FILE_HANDLES,
];

/// The modes that add system calls to the base list.
#[derive(Debug, Clone, Copy, Default)]
pub struct Features {
    /// Host mount mode: the `HOST_MOUNT` group and the /dev/fuse ioctls.
    pub host_mount: bool,
    /// Host mount mode may serve over io_uring (`--io-uring auto|on`): the `IO_URING` group.
    pub io_uring: bool,
}

impl Features {
    fn groups(self) -> impl Iterator<Item = &'static Group> {
        GROUPS
            .iter()
            .chain(self.host_mount.then_some(&HOST_MOUNT))
            .chain(self.io_uring.then_some(&IO_URING))
    }
}

/// Every system call number allowed whatever its arguments, sorted, without duplicates (a
/// negative number stands for a call this architecture lacks).
pub fn allowlist(features: Features) -> Vec<libc::c_long> {
    let mut all: Vec<_> = features
        .groups()
        .flat_map(|g| g.calls.iter().copied())
        .filter(|nr| *nr >= 0)
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The groups and their calls, for listings and debugging.
pub fn describe(
    features: Features,
) -> impl Iterator<Item = (&'static str, &'static [libc::c_long])> {
    features.groups().map(|g| (g.why, g.calls))
}

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;
#[cfg(target_arch = "riscv64")]
const ARCH: TargetArch = TargetArch::riscv64;

/// Compiles the filter for `action` (`None` for [`SeccompAction::None`]) and `features`.
///
/// # Errors
/// The filter cannot be built for this architecture.
pub fn program(
    action: SeccompAction,
    features: Features,
) -> Result<Option<BpfProgram>, SeccompError> {
    let mismatch = match action {
        SeccompAction::None => return Ok(None),
        SeccompAction::Kill => seccompiler::SeccompAction::KillProcess,
        SeccompAction::Log => seccompiler::SeccompAction::Log,
        SeccompAction::Trap => seccompiler::SeccompAction::Trap,
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = allowlist(features)
        .into_iter()
        .map(|nr| (nr, Vec::new()))
        .collect();
    let host_mount_ioctls = if features.host_mount {
        HOST_MOUNT_IOCTLS
    } else {
        &[]
    };
    let ioctls = IOCTLS
        .iter()
        .chain(host_mount_ioctls)
        .map(|req| {
            let cond = SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, *req)?;
            SeccompRule::new(vec![cond])
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(SeccompError::Build)?;
    rules.insert(libc::SYS_ioctl, ioctls);
    let filter = SeccompFilter::new(rules, mismatch, seccompiler::SeccompAction::Allow, ARCH)
        .map_err(SeccompError::Build)?;
    BpfProgram::try_from(filter)
        .map(Some)
        .map_err(SeccompError::Compile)
}

/// Installs the filter for `action` and `features` on the calling thread (call it
/// single-threaded, so every later thread inherits it). Sets `no_new_privs`, which the
/// filter needs.
///
/// # Errors
/// The filter cannot be built or installed.
pub fn install(action: SeccompAction, features: Features) -> Result<(), SeccompError> {
    if let Some(prog) = program(action, features)? {
        seccompiler::apply_filter(&prog).map_err(SeccompError::Install)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oslib::{namespace, process};

    /// Every optional group on.
    const ALL: Features = Features {
        host_mount: true,
        io_uring: true,
    };

    #[test]
    fn io_uring_only_when_host_mount_mode_may_use_it() {
        let uring = [
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
        ];
        let vm = allowlist(Features::default());
        let mount_without_rings = allowlist(Features {
            host_mount: true,
            io_uring: false,
        });
        let all = allowlist(ALL);
        for nr in uring {
            assert!(!vm.contains(&nr), "syscall {nr} allowed for a VM");
            assert!(
                !mount_without_rings.contains(&nr),
                "syscall {nr} with --io-uring off"
            );
            assert!(all.contains(&nr), "syscall {nr} missing with io_uring");
        }
    }

    #[test]
    fn every_group_is_listed_and_nothing_twice() {
        for features in [Features::default(), ALL] {
            let total: usize = describe(features).map(|(_, c)| c.len()).sum();
            assert_eq!(
                allowlist(features).len(),
                total,
                "a call is listed in two groups"
            );
        }
    }

    #[test]
    fn dangerous_calls_stay_out() {
        let all = allowlist(ALL);
        for nr in [
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_ptrace,
            libc::SYS_mount,
            libc::SYS_pivot_root,
            libc::SYS_chroot,
            libc::SYS_setns,
            libc::SYS_init_module,
            libc::SYS_kexec_load,
            libc::SYS_bpf,
            libc::SYS_capset,
            libc::SYS_setuid,
            libc::SYS_process_vm_writev,
            libc::SYS_ioctl,
        ] {
            assert!(!all.contains(&nr), "syscall {nr} must not be allowed");
        }
    }

    /// Forks a child that installs the filter for `action` and then calls chroot(2), which
    /// the allowlist leaves out; returns the child's raw wait status.
    fn forbidden_call_in_child(action: SeccompAction) -> i32 {
        let prog = program(action, Features::default()).unwrap().unwrap();
        // SAFETY: the child only makes system calls (prctl, seccomp, chroot, _exit) on
        // memory prepared before the fork, and never returns into the test harness.
        let pid = unsafe { namespace::fork() }.unwrap();
        if pid == 0 {
            if seccompiler::apply_filter(&prog).is_err() {
                process::exit_now(2);
            }
            let _ = namespace::chroot(c"/");
            process::exit_now(0);
        }
        namespace::waitpid(pid).unwrap()
    }

    #[test]
    fn a_forbidden_call_kills_or_is_logged() {
        let killed = forbidden_call_in_child(SeccompAction::Kill);
        assert!(
            libc::WIFSIGNALED(killed) && libc::WTERMSIG(killed) == libc::SIGSYS,
            "kill: wait status {killed:#x}"
        );
        let trapped = forbidden_call_in_child(SeccompAction::Trap);
        assert!(
            libc::WIFSIGNALED(trapped) && libc::WTERMSIG(trapped) == libc::SIGSYS,
            "trap: wait status {trapped:#x}"
        );
        let logged = forbidden_call_in_child(SeccompAction::Log);
        assert!(
            libc::WIFEXITED(logged) && libc::WEXITSTATUS(logged) == 0,
            "log: wait status {logged:#x}"
        );
    }

    #[test]
    fn every_action_compiles() {
        for action in [SeccompAction::Kill, SeccompAction::Log, SeccompAction::Trap] {
            for features in [Features::default(), ALL] {
                assert!(program(action, features).unwrap().is_some());
            }
        }
        assert!(
            program(SeccompAction::None, Features::default())
                .unwrap()
                .is_none()
        );
    }
}
