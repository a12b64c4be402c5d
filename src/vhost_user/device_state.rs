//! Device state transfer for live migration (vhost-user `DEVICE_STATE`:
//! `SET_DEVICE_STATE_FD`, then `CHECK_DEVICE_STATE`), in the STOPPED phase only.
//!
//! On SAVE the state is taken at once (the frontend stopped every queue, so nothing changes
//! it) and written to the frontend's pipe by a thread; on LOAD a thread reads the pipe to
//! its end. Neither blocks the vhost-user message loop, as the protocol requires.
//! CHECK_DEVICE_STATE waits for that thread and, on LOAD, rebuilds the state. The frontend
//! only learns "failed"; the reason goes to the log.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::Mutex;
use std::thread::{self, JoinHandle};

use vhost::vhost_user::message::{VhostTransferStateDirection, VhostTransferStatePhase};

use crate::fuse::filesystem::FileSystem;
use crate::fuse::server::Server;
use crate::fuse::server::migration::MigrationError;

/// Largest state accepted on LOAD: far above what millions of held inodes take, and it
/// keeps a runaway or hostile sender from exhausting memory.
pub const MAX_STATE: u64 = 1 << 30;

/// Errors of a device state transfer.
#[derive(Debug, thiserror::Error)]
pub enum DeviceStateError {
    #[error("the frontend asked for a state transfer in phase {0:?}; only STOPPED exists")]
    Phase(VhostTransferStatePhase),
    #[error("cannot start the state transfer thread")]
    Spawn(#[source] io::Error),
    #[error("cannot write the device state to the frontend")]
    Write(#[source] io::Error),
    #[error("cannot read the device state from the frontend")]
    Read(#[source] io::Error),
    #[error("the device state from the frontend exceeds {MAX_STATE} bytes")]
    TooLarge,
    #[error("the state transfer thread panicked")]
    Panicked,
    #[error("CHECK_DEVICE_STATE without a transfer started by SET_DEVICE_STATE_FD")]
    NoTransfer,
    #[error(transparent)]
    Migration(#[from] MigrationError),
}

enum Pending {
    Save(JoinHandle<Result<(), DeviceStateError>>),
    Load(JoinHandle<Result<Vec<u8>, DeviceStateError>>),
}

/// The transfer in progress, between SET_DEVICE_STATE_FD and CHECK_DEVICE_STATE.
#[derive(Default)]
pub struct DeviceState {
    pending: Mutex<Option<Pending>>,
}

impl DeviceState {
    /// SET_DEVICE_STATE_FD: starts saving `server`'s state into `file`, or loading it
    /// from `file`.
    ///
    /// # Errors
    /// Another phase than STOPPED, a state that cannot be saved (e.g. locks held), or no
    /// thread.
    pub fn start<F: FileSystem>(
        &self,
        server: &Server<F>,
        direction: VhostTransferStateDirection,
        phase: VhostTransferStatePhase,
        mut file: File,
    ) -> Result<(), DeviceStateError> {
        if phase != VhostTransferStatePhase::STOPPED {
            return Err(DeviceStateError::Phase(phase));
        }
        let pending = match direction {
            VhostTransferStateDirection::SAVE => {
                let blob = server.save_state()?;
                log::info!("migration: saving {} bytes of device state", blob.len());
                Pending::Save(spawn(move || {
                    file.write_all(&blob).map_err(DeviceStateError::Write)
                })?)
            }
            VhostTransferStateDirection::LOAD => {
                Pending::Load(spawn(move || read_state(file, MAX_STATE))?)
            }
        };
        // A transfer the frontend never checked is simply dropped (its thread ends when
        // the frontend closes its end of the pipe).
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(pending);
        Ok(())
    }

    /// CHECK_DEVICE_STATE: waits for the transfer; after a LOAD, rebuilds the state in
    /// `server`.
    ///
    /// # Errors
    /// The transfer failed, or the loaded state was refused.
    pub fn check<F: FileSystem>(&self, server: &Server<F>) -> Result<(), DeviceStateError> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match pending.ok_or(DeviceStateError::NoTransfer)? {
            Pending::Save(t) => t.join().map_err(|_| DeviceStateError::Panicked)?,
            Pending::Load(t) => {
                let blob = t.join().map_err(|_| DeviceStateError::Panicked)??;
                server.load_state(&blob)?;
                log::info!("migration: device state of {} bytes restored", blob.len());
                Ok(())
            }
        }
    }
}

fn spawn<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DeviceStateError> + Send + 'static,
) -> Result<JoinHandle<Result<T, DeviceStateError>>, DeviceStateError> {
    thread::Builder::new()
        .name("vhostfsd-state".into())
        .spawn(f)
        .map_err(DeviceStateError::Spawn)
}

/// Reads a state to its end, refusing one longer than `max` bytes without reading (or
/// allocating) past `max + 1`.
fn read_state(file: impl Read, max: u64) -> Result<Vec<u8>, DeviceStateError> {
    let mut blob = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut blob)
        .map_err(DeviceStateError::Read)?;
    if blob.len() as u64 > max {
        return Err(DeviceStateError::TooLarge);
    }
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_longer_than_the_limit_is_refused_without_reading_it_all() {
        assert_eq!(read_state(&[7u8; 16][..], 16).unwrap(), vec![7u8; 16]);
        assert!(matches!(
            read_state(&[7u8; 17][..], 16),
            Err(DeviceStateError::TooLarge)
        ));
        // An endless sender: reading stops at the limit.
        assert!(matches!(
            read_state(std::io::repeat(1), 1 << 20),
            Err(DeviceStateError::TooLarge)
        ));
    }
}
