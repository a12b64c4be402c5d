//! `--uid-map` / `--gid-map` (virtiofsd's syntax `:namespace_id:host_id:count:`): the
//! namespace sandbox starts in a new user namespace whose ids map to a host range, so an
//! unprivileged user can run the daemon (libvirt does this in session mode) and guest
//! root is only the range's first host id on the host.
//!
//! The calling process forks; the child unshares the user namespace and waits; the parent
//! writes the child's maps (with newuidmap/newgidmap, the setuid helpers that check
//! /etc/subuid and /etc/subgid, unless it is root, which writes /proc/PID/*_map itself),
//! then lets the child go on and waits for it, forwarding signals. The child becomes root
//! of its namespace and continues with the namespace sandbox.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::str::FromStr;

use super::{Outcome, SandboxError, namespace};
use crate::oslib::{creds, namespace as ns};

/// One id range: `count` ids from `inside` in the namespace are `outside..` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// A `--uid-map`/`--gid-map` value that does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "bad id map {0:?}: expected :namespace_id:host_id:count: (e.g. :0:100000:65536:) with a \
     count above 0"
)]
pub struct IdRangeError(String);

impl FromStr for IdRange {
    type Err = IdRangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IdRangeError(s.to_owned());
        let inner = s
            .strip_prefix(':')
            .and_then(|r| r.strip_suffix(':'))
            .ok_or_else(err)?;
        let nums: Vec<u32> = inner
            .split(':')
            .map(|n| n.parse().map_err(|_| err()))
            .collect::<Result<_, _>>()?;
        match nums[..] {
            [inside, outside, count]
                // u32::MAX is "no id" to the kernel: no range may reach it.
                if count > 0
                    && inside.checked_add(count - 1).is_some_and(|e| e != u32::MAX)
                    && outside.checked_add(count - 1).is_some_and(|e| e != u32::MAX) =>
            {
                Ok(Self {
                    inside,
                    outside,
                    count,
                })
            }
            _ => Err(err()),
        }
    }
}

impl fmt::Display for IdRange {
    /// The line the kernel's `uid_map` takes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.inside, self.outside, self.count)
    }
}

/// The uid and gid ranges of the user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserNamespace {
    pub uids: IdRange,
    pub gids: IdRange,
}

/// Enters a new user namespace with `maps`. Returns `None` in the child, which goes on,
/// as root of the namespace; `Some` in the parent once the child has exited.
///
/// Call it while the process is single-threaded.
///
/// # Errors
/// A step failed (fork, unshare, the helpers, or the wait).
pub(super) fn enter(maps: &UserNamespace) -> Result<Option<Outcome>, SandboxError> {
    let (mut parent_end, mut child_end) =
        UnixStream::pair().map_err(step("create the set-up socket pair"))?;
    let parent = ns::getpid();
    // SAFETY: the caller guarantees the process is single-threaded.
    let pid = unsafe { ns::fork() }.map_err(SandboxError::Fork)?;
    if pid == 0 {
        drop(parent_end);
        let _ = ns::set_parent_death_signal(libc::SIGTERM);
        ns::unshare(libc::CLONE_NEWUSER).map_err(SandboxError::Unshare)?;
        child_end
            .write_all(b"u")
            .map_err(step("tell the parent the namespace exists"))?;
        let mut ok = [0u8; 1];
        child_end
            .read_exact(&mut ok)
            .map_err(step("wait for the id maps"))?;
        creds::thread_setresgid(0, 0, 0).map_err(step("become gid 0 of the namespace"))?;
        creds::thread_setresuid(0, 0, 0).map_err(step("become uid 0 of the namespace"))?;
        // Changing credentials cleared the parent-death signal (prctl(2)): without it a
        // SIGKILL of the parent would leave this process and the daemon under it running.
        // Set it again, and stop if the parent is already gone.
        let _ = ns::set_parent_death_signal(libc::SIGTERM);
        if ns::getppid() != parent {
            return Err(SandboxError::UserNamespace {
                what: "keep the parent process",
                source: io::Error::other("it exited while the user namespace was set up"),
            });
        }
        return Ok(None);
    }
    drop(child_end);
    let mut ready = [0u8; 1];
    parent_end
        .read_exact(&mut ready)
        .map_err(step("wait for the child's user namespace"))?;
    write_maps(pid, maps)?;
    parent_end
        .write_all(b"m")
        .map_err(step("tell the child its maps are set"))?;
    namespace::wait_for_child(pid).map(Some)
}

fn step(what: &'static str) -> impl FnOnce(io::Error) -> SandboxError {
    move |source| SandboxError::UserNamespace { what, source }
}

/// Writes the uid and gid maps of `pid`: directly as root, else with the setuid helpers.
fn write_maps(pid: libc::pid_t, maps: &UserNamespace) -> Result<(), SandboxError> {
    if creds::geteuid() == 0 {
        std::fs::write(format!("/proc/{pid}/uid_map"), format!("{}\n", maps.uids))
            .map_err(step("write the uid map"))?;
        std::fs::write(format!("/proc/{pid}/gid_map"), format!("{}\n", maps.gids))
            .map_err(step("write the gid map"))?;
        return Ok(());
    }
    for (helper, range) in [("newuidmap", maps.uids), ("newgidmap", maps.gids)] {
        let status = Command::new(helper)
            .arg(pid.to_string())
            .arg(range.inside.to_string())
            .arg(range.outside.to_string())
            .arg(range.count.to_string())
            .status()
            .map_err(|source| SandboxError::IdMapHelper {
                helper,
                detail: "cannot run it (is the uidmap package installed?)".into(),
                source: Some(source),
            })?;
        if !status.success() {
            return Err(SandboxError::IdMapHelper {
                helper,
                detail: format!(
                    "it failed ({status}): check that /etc/subuid and /etc/subgid give this \
                     user the range"
                ),
                source: None,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtiofsd_syntax_parses() {
        let r: IdRange = ":0:100000:65536:".parse().unwrap();
        assert_eq!(
            r,
            IdRange {
                inside: 0,
                outside: 100_000,
                count: 65536
            }
        );
        assert_eq!(r.to_string(), "0 100000 65536");
        for bad in [
            "0:100000:65536",
            ":0:100000:",
            ":0:100000:0:",
            ":0:x:1:",
            ":4294967295:0:2:",
            "",
        ] {
            assert!(bad.parse::<IdRange>().is_err(), "{bad:?}");
        }
    }

    /// Hostile command-line input: every malformed map is an error, never a panic or a
    /// range that reaches the kernel's "no id" (u32::MAX).
    #[test]
    fn hostile_maps_are_refused() {
        let long = format!(":{}:0:1:", "9".repeat(10_000));
        for bad in [
            ":",
            "::",
            ":::",
            "::::",
            "::0:1:2:",
            ":0:1:2::",
            ":0:1:2:3:",
            ": 0:1:2:",
            ":0:1:-2:",
            ":-1:0:1:",
            ":0:4294967296:1:",
            ":0:4294967295:1:",
            ":4294967295:0:1:",
            ":0:4294967294:2:",
            ":0:0:4294967295:1:",
            ":0\0:1:1:",
            ":\u{663}:1:1:",
            long.as_str(),
        ] {
            assert!(bad.parse::<IdRange>().is_err(), "{bad:?} must be refused");
        }
        let widest: IdRange = ":0:0:4294967295:".parse().unwrap();
        assert_eq!(widest.to_string(), "0 0 4294967295");
    }
}
