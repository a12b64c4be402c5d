//! The filesystem's section of the migration state: what the guest holds (inodes with
//! their lookup counts, open handles with their flags) and how the destination finds each
//! inode on its own view of the shared directory. Pure data and its codec; the decoder
//! validates everything a later `openat`/`open_by_handle_at` would trust.

use crate::fuse::state::{Decoder, Encoder, StateError};
use crate::oslib::fs::FileHandle;
use crate::passthrough::shards::MAX_ID;

/// The section's format version.
pub const VERSION: u32 = 1;

/// How the destination finds one inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// A path relative to the shared directory: non-empty components, no "." or "..",
    /// no NUL, no leading or doubled '/'.
    Path(Vec<u8>),
    /// A file handle on the shared directory's filesystem (`--migration-mode=file-handles`).
    Handle(FileHandle),
    /// The source could not describe the inode (e.g. deleted while open); the reason.
    Lost(String),
}

/// One inode the guest holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InodeState {
    /// The guest's node id.
    pub id: u64,
    /// Lookups the guest has not forgotten.
    pub refcount: u64,
    /// `S_IFMT` bits, checked against what the destination opens.
    pub file_type: u32,
    /// How to find it.
    pub locator: Locator,
    /// `--migration-verify-handles`: the file handle the destination must find there.
    pub check: Option<FileHandle>,
}

/// One handle the guest holds open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandleState {
    /// The guest's file handle.
    pub fh: u64,
    /// The node id it was opened on.
    pub inode: u64,
    /// Host open flags to open it with again (no O_CREAT, O_EXCL, O_TRUNC).
    pub flags: i32,
}

/// Everything the filesystem carries to the destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsState {
    /// The next node id the source would have given out.
    pub next_inode: u64,
    /// The last handle number the source gave out.
    pub last_handle: u64,
    /// Inodes, root excluded.
    pub inodes: Vec<InodeState>,
    /// Open handles.
    pub handles: Vec<HandleState>,
}

const LOC_PATH: u8 = 0;
const LOC_HANDLE: u8 = 1;
const LOC_LOST: u8 = 2;
/// Smallest encoded inode: id, refcount, type, locator tag + empty string, check tag.
const MIN_INODE: usize = 8 + 8 + 4 + 1 + 4 + 1;
/// Encoded handle: fh, inode, flags.
const MIN_HANDLE: usize = 8 + 8 + 4;

/// Whether `p` is a path the destination may walk below the shared directory.
pub fn valid_path(p: &[u8]) -> bool {
    !p.is_empty()
        && !p.contains(&0)
        && p.split(|b| *b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

fn handle(d: &mut Decoder<'_>) -> Result<FileHandle, StateError> {
    FileHandle::from_bytes(d.bytes()?).ok_or(StateError::Invalid("malformed file handle"))
}

impl FsState {
    /// The section as bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u32(VERSION)
            .u64(self.next_inode)
            .u64(self.last_handle)
            .u64(self.inodes.len() as u64);
        for i in &self.inodes {
            e.u64(i.id).u64(i.refcount).u32(i.file_type);
            match &i.locator {
                Locator::Path(p) => e.u8(LOC_PATH).bytes(p),
                Locator::Handle(h) => e.u8(LOC_HANDLE).bytes(&h.to_bytes()),
                Locator::Lost(why) => e.u8(LOC_LOST).bytes(why.as_bytes()),
            };
            match &i.check {
                None => e.u8(0),
                Some(h) => e.u8(1).bytes(&h.to_bytes()),
            };
        }
        e.u64(self.handles.len() as u64);
        for h in &self.handles {
            e.u64(h.fh).u64(h.inode).u32(h.flags as u32);
        }
        e.finish()
    }

    /// Reads a section written by [`Self::encode`].
    ///
    /// # Errors
    /// Truncated, trailing or invalid data (a path that could leave the shared directory,
    /// a malformed file handle, an unknown tag), or another version.
    pub fn decode(b: &[u8]) -> Result<Self, StateError> {
        let mut d = Decoder::new(b);
        let version = d.u32()?;
        if version != VERSION {
            return Err(StateError::UnsupportedVersion(version, VERSION));
        }
        let next_inode = d.u64()?;
        let last_handle = d.u64()?;
        if next_inode > MAX_ID || last_handle > MAX_ID {
            return Err(StateError::Invalid(
                "a node id or handle counter so large it would wrap around",
            ));
        }
        let n = d.count(MIN_INODE)?;
        let mut inodes = Vec::with_capacity(n);
        for _ in 0..n {
            let id = d.u64()?;
            if id > MAX_ID {
                return Err(StateError::Invalid("a node id beyond the largest one"));
            }
            let refcount = d.u64()?;
            let file_type = d.u32()?;
            if file_type & !libc::S_IFMT != 0 {
                return Err(StateError::Invalid("file type with permission bits"));
            }
            let locator = match d.u8()? {
                LOC_PATH => {
                    let p = d.bytes()?;
                    if !valid_path(p) {
                        return Err(StateError::Invalid(
                            "a path that is empty, absolute, or has '.', '..' or NUL",
                        ));
                    }
                    Locator::Path(p.to_vec())
                }
                LOC_HANDLE => Locator::Handle(handle(&mut d)?),
                LOC_LOST => Locator::Lost(String::from_utf8_lossy(d.bytes()?).into_owned()),
                _ => return Err(StateError::Invalid("unknown inode locator")),
            };
            let check = match d.u8()? {
                0 => None,
                1 => Some(handle(&mut d)?),
                _ => return Err(StateError::Invalid("unknown handle check tag")),
            };
            inodes.push(InodeState {
                id,
                refcount,
                file_type,
                locator,
                check,
            });
        }
        let n = d.count(MIN_HANDLE)?;
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n {
            let h = HandleState {
                fh: d.u64()?,
                inode: d.u64()?,
                flags: d.u32()? as i32,
            };
            if h.fh > MAX_ID {
                return Err(StateError::Invalid("a file handle beyond the largest one"));
            }
            handles.push(h);
        }
        d.finish()?;
        Ok(Self {
            next_inode,
            last_handle,
            inodes,
            handles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FsState {
        let fh = FileHandle::from_bytes(&[4, 0, 0, 0, 1, 0, 0, 0, 9, 9, 9, 9]).unwrap();
        FsState {
            next_inode: 10,
            last_handle: 3,
            inodes: vec![
                InodeState {
                    id: 2,
                    refcount: 3,
                    file_type: libc::S_IFREG,
                    locator: Locator::Path(b"dir/file".to_vec()),
                    check: Some(fh.clone()),
                },
                InodeState {
                    id: 5,
                    refcount: 1,
                    file_type: libc::S_IFDIR,
                    locator: Locator::Handle(fh),
                    check: None,
                },
                InodeState {
                    id: 7,
                    refcount: 1,
                    file_type: libc::S_IFREG,
                    locator: Locator::Lost("deleted".into()),
                    check: None,
                },
            ],
            handles: vec![HandleState {
                fh: 3,
                inode: 2,
                flags: libc::O_RDWR | libc::O_APPEND,
            }],
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        assert_eq!(FsState::decode(&s.encode()), Ok(s));
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_refused() {
        let b = sample().encode();
        for n in 0..b.len() {
            assert!(FsState::decode(&b[..n]).is_err(), "cut at {n}");
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(FsState::decode(&long), Err(StateError::TrailingBytes(1)));
    }

    #[test]
    fn paths_that_could_leave_the_shared_directory_are_refused() {
        for p in [
            &b""[..],
            b"/etc",
            b"..",
            b"a/../b",
            b"a//b",
            b"a/",
            b"./a",
            b"a\0b",
        ] {
            assert!(!valid_path(p), "{p:?}");
            let mut s = sample();
            s.inodes[0].locator = Locator::Path(p.to_vec());
            assert!(FsState::decode(&s.encode()).is_err(), "{p:?}");
        }
        assert!(valid_path(b"a/b c/..d"));
    }

    #[test]
    fn ids_and_counters_that_would_wrap_around_are_refused() {
        let bad = [
            |s: &mut FsState| s.next_inode = MAX_ID + 1,
            |s: &mut FsState| s.last_handle = u64::MAX,
            |s: &mut FsState| s.inodes[0].id = u64::MAX,
            |s: &mut FsState| s.handles[0].fh = MAX_ID + 1,
        ];
        for (i, change) in bad.iter().enumerate() {
            let mut s = sample();
            change(&mut s);
            assert!(
                matches!(FsState::decode(&s.encode()), Err(StateError::Invalid(_))),
                "change {i}"
            );
        }
        let mut s = sample();
        s.next_inode = MAX_ID;
        s.last_handle = MAX_ID;
        assert_eq!(FsState::decode(&s.encode()).unwrap(), s);
    }

    #[test]
    fn a_file_handle_longer_than_the_kernel_allows_is_refused() {
        let mut b = vec![0u8; 8 + 129];
        b[..4].copy_from_slice(&129u32.to_ne_bytes());
        assert!(FileHandle::from_bytes(&b).is_none());
        // handle_bytes disagreeing with the length.
        assert!(FileHandle::from_bytes(&[8, 0, 0, 0, 1, 0, 0, 0, 1]).is_none());
        assert!(FileHandle::from_bytes(&[0, 0, 0]).is_none());
    }
}
