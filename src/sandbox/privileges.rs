//! Dropping capabilities once the daemon is set up: it keeps only what passthrough needs
//! (virtiofsd's list), adjusted by `--modcaps`, and sets `no_new_privs`.
//!
//! Kept by default: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETGID, SETUID, MKNOD, SETFCAP
//! (creating files as the guest caller, chown, mknod, clearing setuid bits, setting
//! `security.capability`), plus DAC_READ_SEARCH when inodes are held as file handles
//! (`open_by_handle_at`). SYS_ADMIN is kept only where a mode asks for it
//! ([`Needs::sys_admin`], for host mount mode's /dev/fuse backing ioctls).

use std::fmt;
use std::io;
use std::str::FromStr;

use crate::oslib::caps::{self, CapSets};

/// Capability names in number order (`linux/capability.h`), without the `CAP_` prefix.
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// One capability, by its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability(u32);

impl Capability {
    pub const CHOWN: Self = Self(0);
    pub const DAC_OVERRIDE: Self = Self(1);
    pub const DAC_READ_SEARCH: Self = Self(2);
    pub const FOWNER: Self = Self(3);
    pub const FSETID: Self = Self(4);
    pub const SETGID: Self = Self(6);
    pub const SETUID: Self = Self(7);
    pub const SETPCAP: Self = Self(8);
    pub const SYS_ADMIN: Self = Self(21);
    pub const MKNOD: Self = Self(27);
    pub const SETFCAP: Self = Self(31);

    /// Its bit in a capability set.
    pub fn bit(self) -> u64 {
        1 << self.0
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CAP_{}", NAMES[self.0 as usize])
    }
}

/// A capability name that is not one.
#[derive(Debug, thiserror::Error)]
#[error("unknown capability {0:?}: use a name such as sys_admin or CAP_SYS_ADMIN")]
pub struct UnknownCapability(String);

impl FromStr for Capability {
    type Err = UnknownCapability;

    /// `sys_admin`, `SYS_ADMIN` or `cap_sys_admin`, as libcap-ng accepts them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.to_ascii_uppercase();
        let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
        NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self(i as u32))
            .ok_or_else(|| UnknownCapability(s.to_owned()))
    }
}

/// `--modcaps` changes: `+cap` adds to what is kept, `-cap` removes, joined by `:`
/// (virtiofsd's syntax, e.g. `+sys_admin:-mknod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapChanges {
    add: u64,
    remove: u64,
}

/// A `--modcaps` value that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum CapChangesError {
    #[error("--modcaps entry {0:?} must start with + or -, e.g. +sys_admin:-mknod")]
    NoSign(String),
    #[error("--modcaps: {0}")]
    Unknown(#[from] UnknownCapability),
}

impl FromStr for CapChanges {
    type Err = CapChangesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut changes = Self::default();
        for entry in s.split(':').filter(|e| !e.is_empty()) {
            let (adding, name) = if let Some(name) = entry.strip_prefix('+') {
                (true, name)
            } else if let Some(name) = entry.strip_prefix('-') {
                (false, name)
            } else {
                return Err(CapChangesError::NoSign(entry.to_owned()));
            };
            let bit = name.parse::<Capability>()?.bit();
            if adding {
                changes.add |= bit;
                changes.remove &= !bit;
            } else {
                changes.remove |= bit;
                changes.add &= !bit;
            }
        }
        Ok(changes)
    }
}

/// What the serving daemon needs besides the base set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// Inodes are held as file handles: `open_by_handle_at` needs CAP_DAC_READ_SEARCH.
    pub file_handles: bool,
    /// The hook for host mount mode: FUSE_DEV_IOC_BACKING_OPEN needs CAP_SYS_ADMIN.
    pub sys_admin: bool,
}

/// The set to keep: the base set, what `needs` adds, then `changes`.
pub fn kept_set(needs: Needs, changes: CapChanges) -> u64 {
    let base = [
        Capability::CHOWN,
        Capability::DAC_OVERRIDE,
        Capability::FOWNER,
        Capability::FSETID,
        Capability::SETGID,
        Capability::SETUID,
        Capability::MKNOD,
        Capability::SETFCAP,
    ];
    let mut set = base.iter().fold(0, |s, c| s | c.bit());
    if needs.file_handles {
        set |= Capability::DAC_READ_SEARCH.bit();
    }
    if needs.sys_admin {
        set |= Capability::SYS_ADMIN.bit();
    }
    (set | changes.add) & !changes.remove
}

/// Errors restricting the process.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("cannot read the daemon's capabilities (capget)")]
    Get(#[source] io::Error),
    #[error("cannot drop {cap} from the bounding set (prctl PR_CAPBSET_DROP)")]
    Bounding {
        cap: Capability,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot set the daemon's capabilities (capset): a capability added with --modcaps \
         must be one the daemon was started with"
    )]
    Set(#[source] io::Error),
    #[error("cannot set no_new_privs (prctl PR_SET_NO_NEW_PRIVS)")]
    NoNewPrivs(#[source] io::Error),
}

/// Restricts the calling thread (call it single-threaded, so every later thread inherits
/// it) to `kept`, intersected with what it has: the bounding set loses every other
/// capability (when the daemon may change it), the ambient and inheritable sets are
/// emptied, and `no_new_privs` is set.
///
/// # Errors
/// A `capset`/`prctl` step failed.
pub fn restrict(kept: u64) -> Result<(), CapsError> {
    let now = caps::capget().map_err(CapsError::Get)?;
    let setpcap = Capability::SETPCAP.bit();
    if now.effective & setpcap != 0 {
        for cap in (0..NAMES.len() as u32).filter(|c| kept & (1 << c) == 0) {
            // Skipped when unknown to this kernel (EINVAL) or already gone.
            if let Ok(true) = caps::bounding_set_has(cap) {
                caps::bounding_set_drop(cap).map_err(|source| CapsError::Bounding {
                    cap: Capability(cap),
                    source,
                })?;
            }
        }
    }
    // Ambient capabilities exist since Linux 4.3; an older kernel has none to clear.
    let _ = caps::clear_ambient_set();
    let permitted = now.permitted & kept;
    caps::capset(CapSets {
        effective: permitted,
        permitted,
        inheritable: 0,
    })
    .map_err(CapsError::Set)?;
    caps::set_no_new_privs().map_err(CapsError::NoNewPrivs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_every_spelling() {
        for s in ["sys_admin", "SYS_ADMIN", "cap_sys_admin", "CAP_SYS_ADMIN"] {
            assert_eq!(s.parse::<Capability>().unwrap(), Capability::SYS_ADMIN);
        }
        assert_eq!(Capability::SETFCAP.to_string(), "CAP_SETFCAP");
        assert_eq!("checkpoint_restore".parse::<Capability>().unwrap().0, 40);
        assert!("sys_bogus".parse::<Capability>().is_err());
    }

    #[test]
    fn kept_set_is_virtiofsds_list() {
        let base = kept_set(Needs::default(), CapChanges::default());
        assert_eq!(base.count_ones(), 8);
        assert_eq!(base & Capability::DAC_READ_SEARCH.bit(), 0);
        assert_eq!(base & Capability::SYS_ADMIN.bit(), 0);
        let fh = Needs {
            file_handles: true,
            ..Needs::default()
        };
        assert_ne!(
            kept_set(fh, CapChanges::default()) & Capability::DAC_READ_SEARCH.bit(),
            0
        );
        let mount = Needs {
            sys_admin: true,
            ..Needs::default()
        };
        assert_ne!(
            kept_set(mount, CapChanges::default()) & Capability::SYS_ADMIN.bit(),
            0
        );
    }

    #[test]
    fn modcaps_adds_and_removes() {
        let c: CapChanges = "+sys_admin:-mknod".parse().unwrap();
        let set = kept_set(Needs::default(), c);
        assert_ne!(set & Capability::SYS_ADMIN.bit(), 0);
        assert_eq!(set & Capability::MKNOD.bit(), 0);
        // The last word on a capability wins.
        let c: CapChanges = "+mknod:-mknod".parse().unwrap();
        assert_eq!(kept_set(Needs::default(), c) & Capability::MKNOD.bit(), 0);
        assert!(matches!(
            "sys_admin".parse::<CapChanges>(),
            Err(CapChangesError::NoSign(_))
        ));
        assert!(matches!(
            "+nope".parse::<CapChanges>(),
            Err(CapChangesError::Unknown(_))
        ));
        assert_eq!("".parse::<CapChanges>().unwrap(), CapChanges::default());
    }
}
