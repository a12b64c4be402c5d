//! The FUSE session in the migration state: the blob a source daemon saves and a
//! destination daemon loads (vhost-user device state).
//!
//! Layout (all integers little-endian): the magic `VHOSTFSD`, the format version, the
//! session (whether INIT was done, the protocol minor, the agreed flags), then the
//! filesystem's own section, which [`SessionOps::save_state`](crate::fuse::filesystem::SessionOps::save_state) writes and
//! [`SessionOps::load_state`](crate::fuse::filesystem::SessionOps::load_state) reads.

use std::io;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use super::Server;
use super::init::FS_FLAGS;
use crate::fuse::filesystem::FileSystem;
use crate::fuse::state::{Decoder, Encoder, StateError};

/// The first bytes of every state blob.
pub const MAGIC: &[u8; 8] = b"VHOSTFSD";
/// The format version written; a destination reads this version only.
pub const VERSION: u32 = 1;

/// Errors saving or loading the migration state.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("the migration state cannot be read")]
    State(#[from] StateError),
    #[error("the filesystem state cannot be saved for migration")]
    Save(#[source] io::Error),
    #[error("the filesystem state from the migration source cannot be restored")]
    Load(#[source] io::Error),
    #[error(
        "the source agreed FUSE flags {source_flags:#x} with the guest, this daemon would \
         agree {here:#x}: start the destination daemon with the source's options (--cache, \
         --xattr, --posix-acl, --writeback, --announce-submounts, --thread-pool-size ...)"
    )]
    OptionsDiffer { source_flags: u64, here: u64 },
}

impl<F: FileSystem> Server<F> {
    /// Saves the session and the filesystem state. Call it with the queues stopped (the
    /// vhost-user STOPPED phase), so no request changes the state meanwhile.
    ///
    /// # Errors
    /// The filesystem refuses (state it cannot carry, see its documentation).
    pub fn save_state(&self) -> Result<Vec<u8>, MigrationError> {
        let _guard = self
            .session
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut e = Encoder::new();
        e.raw(MAGIC).u32(VERSION);
        e.u8(u8::from(self.session.initialized.load(Ordering::Acquire)))
            .u32(self.session.minor.load(Ordering::Relaxed))
            .u64(self.session.flags.load(Ordering::Relaxed));
        let fs = self.fs.save_state().map_err(MigrationError::Save)?;
        e.raw(&fs);
        Ok(e.finish())
    }

    /// Replaces the session and the filesystem state with those in `blob`, as if the guest
    /// had sent INIT and every lookup and open here. Nothing is changed when the blob is
    /// refused as a whole.
    ///
    /// # Errors
    /// A corrupt or foreign blob, options that would agree other FUSE flags than the
    /// source did, or a filesystem state that cannot be rebuilt.
    pub fn load_state(&self, blob: &[u8]) -> Result<(), MigrationError> {
        let mut d = Decoder::new(blob);
        if d.raw(MAGIC.len())? != MAGIC {
            return Err(StateError::BadMagic.into());
        }
        let version = d.u32()?;
        if version != VERSION {
            return Err(StateError::UnsupportedVersion(version, VERSION).into());
        }
        let initialized = match d.u8()? {
            0 => false,
            1 => true,
            _ => return Err(StateError::Invalid("session flag is neither 0 nor 1").into()),
        };
        let minor = d.u32()?;
        let flags = d.u64()?;
        let fs_state = d.raw(d.remaining())?;

        let _guard = self.end_session();
        if initialized {
            let fs_flags = flags & FS_FLAGS;
            let here = self.fs.init(fs_flags).map_err(MigrationError::Load)? & FS_FLAGS;
            if here != fs_flags {
                return Err(MigrationError::OptionsDiffer {
                    source_flags: fs_flags,
                    here,
                });
            }
        }
        if let Err(e) = self.fs.load_state(fs_state) {
            self.fs.destroy();
            return Err(MigrationError::Load(e));
        }
        self.session.flags.store(flags, Ordering::Relaxed);
        self.session.minor.store(minor, Ordering::Relaxed);
        self.session
            .initialized
            .store(initialized, Ordering::Release);
        Ok(())
    }
}
