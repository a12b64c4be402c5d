//! The backend request channel (the socket the frontend hands over with
//! SET_BACKEND_REQ_FD) and the DAX window mapped through it.
//!
//! The channel is kept for the whole connection: dropping it makes QEMU read end-of-file
//! ("Unexpected end-of-file before all data were read") and lose the channel. With a window
//! (`--dax-window`), the frontend learns its size from GET_SHMEM_CONFIG (shared-memory
//! region 0) and the filesystem maps host files into it with BACKEND_SHMEM_MAP/UNMAP (9/10).
//!
//! QEMU 11.1 crashes on a SHMEM_MAP sent before the guest driver is up (DRIVER_OK): its
//! handler dereferences the vhost device's VirtIODevice, which `vhost_dev_start` sets only
//! when the guest writes DRIVER_OK (and `vhost_dev_stop` clears). So maps are sent only
//! while the device runs, from the first queue kick on: QEMU hands over the kick eventfds
//! (SET_VRING_KICK) inside `vhost_dev_start`, after that pointer is set, so no kick can
//! reach a worker earlier; a stop (GET_VRING_BASE), reset or disconnect ends it. The
//! protocol's own signal, SET_STATUS with DRIVER_OK (protocol feature STATUS), cannot be
//! used: vhost 0.18's request handler does not serve it (see `features::protocol_features`). A reset or a new connection also starts a new window epoch: the frontend has
//! dropped the old mappings, so the filesystem forgets its map rather than unmap ranges
//! that are gone (QEMU closes the channel on an unmap it cannot match).

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use vhost::vhost_user::message::{VhostUserMMap, VhostUserMMapFlags, VhostUserShMemConfig};
use vhost::vhost_user::{Backend, VhostUserFrontendReqHandler};

use crate::fuse::dax::{DaxWindow, MapRequest};
use crate::oslib::errno;

/// The shared-memory region id of the DAX window (the Linux guest uses region 0).
pub const DAX_SHMID: u8 = 0;

/// The backend request channel of the current connection, and the window behind it.
#[derive(Default)]
pub struct BackendChannel {
    /// Bytes of the DAX window; 0 = no window.
    window_size: u64,
    channel: Mutex<Option<Backend>>,
    /// The device runs (vrings started after DRIVER_OK): maps may be sent.
    running: AtomicBool,
    epoch: AtomicU64,
}

fn unavailable(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        format!("cannot {what}: no backend channel, or the device is not running"),
    )
}

impl BackendChannel {
    /// A channel slot for connections with a DAX window of `window_size` bytes (0: none).
    pub fn new(window_size: u64) -> Self {
        Self {
            window_size,
            ..Self::default()
        }
    }

    /// Whether a DAX window is configured.
    pub fn has_window(&self) -> bool {
        self.window_size > 0
    }

    /// The GET_SHMEM_CONFIG answer: region 0 is the window.
    pub fn shmem_config(&self) -> Option<VhostUserShMemConfig> {
        self.has_window()
            .then(|| VhostUserShMemConfig::new(1, &[self.window_size]))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Backend>> {
        self.channel.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the channel the frontend sent (SET_BACKEND_REQ_FD) until the connection ends.
    pub fn attach(&self, backend: Backend) {
        *self.lock() = Some(backend);
    }

    /// The device started serving queues (a kick arrived): the guest driver is up.
    pub fn device_running(&self) {
        // Only the first kick after a stop changes anything; the load keeps the hot path
        // free of stores to a shared cache line.
        if !self.running.load(Ordering::Acquire) {
            self.running.store(true, Ordering::Release);
        }
    }

    /// The device stopped (GET_VRING_BASE): no maps until it runs again.
    pub fn device_stopped(&self) {
        self.running.store(false, Ordering::Release);
    }

    /// The device was reset: no maps, and the frontend dropped every mapping.
    pub fn device_reset(&self) {
        self.device_stopped();
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The connection ended: the channel closes with it, and so do the mappings.
    pub fn detach(&self) {
        self.device_reset();
        self.lock().take();
    }

    /// The channel, when maps may be sent now.
    fn usable(&self, what: &str) -> io::Result<Backend> {
        if !self.running.load(Ordering::Acquire) {
            return Err(unavailable(what));
        }
        self.lock().clone().ok_or_else(|| unavailable(what))
    }
}

impl DaxWindow for BackendChannel {
    fn size(&self) -> u64 {
        self.window_size
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn map(&self, req: &MapRequest<'_>) -> io::Result<()> {
        let backend = self.usable("map into the DAX window")?;
        let flags = if req.writable {
            VhostUserMMapFlags::WRITABLE
        } else {
            VhostUserMMapFlags::default()
        };
        let msg = VhostUserMMap {
            shmid: DAX_SHMID,
            padding: [0; 7],
            fd_offset: req.file_offset,
            shm_offset: req.window_offset,
            len: req.len,
            flags: flags.bits(),
        };
        backend.shmem_map(&msg, &req.fd).map(drop).map_err(|e| {
            log::warn!(
                "the frontend refused SHMEM_MAP of {:#x}+{:#x}: {e}",
                req.window_offset,
                req.len
            );
            errno::error(libc::EIO)
        })
    }

    fn unmap(&self, window_offset: u64, len: u64) -> io::Result<()> {
        let backend = self.usable("unmap from the DAX window")?;
        let msg = VhostUserMMap {
            shmid: DAX_SHMID,
            padding: [0; 7],
            fd_offset: 0,
            shm_offset: window_offset,
            len,
            flags: 0,
        };
        backend.shmem_unmap(&msg).map(drop).map_err(|e| {
            log::warn!("the frontend refused SHMEM_UNMAP of {window_offset:#x}+{len:#x}: {e}");
            errno::error(libc::EIO)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use vm_memory::ByteValued;

    use super::*;

    fn request(file: &std::fs::File) -> MapRequest<'_> {
        MapRequest {
            fd: file.as_fd(),
            file_offset: 0x1000,
            window_offset: 0x20_0000,
            len: 0x20_0000,
            writable: true,
        }
    }

    #[test]
    fn no_map_before_the_device_runs_or_after_it_stops() {
        let c = BackendChannel::new(1 << 30);
        let f = tempfile::tempfile().unwrap();
        assert!(c.map(&request(&f)).is_err(), "no channel");
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let backend = Backend::from_stream(ours);
        backend.set_shmem_flag(true);
        c.attach(backend);
        assert!(c.map(&request(&f)).is_err(), "before the first kick");
        let e0 = c.epoch();
        c.device_running();
        c.device_stopped();
        assert!(c.map(&request(&f)).is_err(), "after a stop");
        assert_eq!(c.epoch(), e0, "a stop keeps the mappings");
        c.device_reset();
        assert_ne!(c.epoch(), e0, "a reset drops them");
    }

    #[test]
    fn map_sends_shmem_map_with_the_fd() {
        use std::io::Read;
        let c = BackendChannel::new(1 << 30);
        assert_eq!(c.shmem_config().unwrap().nregions, 1);
        assert_eq!(c.shmem_config().unwrap().memory_sizes[0], 1 << 30);
        assert!(BackendChannel::new(0).shmem_config().is_none());
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let backend = Backend::from_stream(ours);
        backend.set_shmem_flag(true);
        c.attach(backend);
        c.device_running();
        let f = tempfile::tempfile().unwrap();
        c.map(&request(&f)).unwrap(); // no REPLY_ACK: no answer awaited
        let mut buf = vec![0u8; 12 + size_of::<VhostUserMMap>()];
        theirs.read_exact(&mut buf).unwrap();
        // Header: request, flags, size (u32 each, little endian).
        let word = |i: usize| u32::from_le_bytes(buf[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!(word(0), 9, "VHOST_USER_BACKEND_SHMEM_MAP");
        assert_eq!(word(2) as usize, size_of::<VhostUserMMap>());
        let msg = VhostUserMMap::from_slice(&buf[12..]).unwrap();
        let (fd_offset, shm_offset, len, flags) =
            (msg.fd_offset, msg.shm_offset, msg.len, msg.flags);
        assert_eq!(
            (msg.shmid, fd_offset, shm_offset, len, flags),
            (0, 0x1000, 0x20_0000, 0x20_0000, 1)
        );
        c.detach();
        assert!(c.unmap(0x20_0000, 0x20_0000).is_err());
    }
}
