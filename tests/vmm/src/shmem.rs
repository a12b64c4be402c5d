//! A SHMEM-capable VMM for the tests: the frontend side of the backend request channel,
//! with a window of its own into which it maps what the daemon asks (SHMEM_MAP with the
//! file's fd), with QEMU 11.1's rules: a map must fit the region and overlap nothing; an
//! unmap must match an earlier map exactly. Refusals are counted, so a test can assert the
//! daemon never sent a map QEMU would refuse.

use std::fs;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use vhost::vhost_user::message::{VhostUserMMap, VhostUserMMapFlags};
use vhost::vhost_user::{FrontendReqHandler, HandlerResult, VhostUserFrontendReqHandlerMut};

/// One mapping the daemon asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub shm_offset: u64,
    pub len: u64,
    pub fd_offset: u64,
    pub writable: bool,
}

/// The window: a reserved (PROT_NONE) range of this process, file ranges mapped into it.
pub struct Window {
    base: *mut u8,
    size: u64,
    pub maps: Vec<Mapping>,
    /// Requests a strict frontend (QEMU) would have refused.
    pub refused: Vec<String>,
    /// Every request in order, for assertions.
    pub log: Vec<String>,
}

// SAFETY: `base` is a private reservation of this process owned by the Window; all access
// goes through the Mutex that wraps it.
unsafe impl Send for Window {}

impl Window {
    fn new(size: u64) -> Self {
        // SAFETY: an anonymous PROT_NONE reservation at an address the kernel picks; it is
        // unmapped in Drop.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "reserve the test window");
        Self {
            base: base.cast(),
            size,
            maps: Vec::new(),
            refused: Vec::new(),
            log: Vec::new(),
        }
    }

    /// `len` bytes of the window at `offset` (which must be mapped).
    pub fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        assert!(
            self.maps
                .iter()
                .any(|m| offset >= m.shm_offset && offset + len as u64 <= m.shm_offset + m.len)
        );
        // SAFETY: the range lies inside one live mapping of the window (checked above).
        unsafe { std::slice::from_raw_parts(self.base.add(offset as usize), len) }.to_vec()
    }

    /// Writes `data` into the window at `offset` (inside a writable mapping).
    pub fn write(&self, offset: u64, data: &[u8]) {
        assert!(self.maps.iter().any(|m| m.writable
            && offset >= m.shm_offset
            && offset + data.len() as u64 <= m.shm_offset + m.len));
        // SAFETY: the range lies inside one live, writable mapping (checked above), and
        // nothing else in this process holds a reference into it.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(offset as usize), data.len())
        };
    }

    fn refuse(&mut self, why: String) -> HandlerResult<u64> {
        self.refused.push(why.clone());
        Err(std::io::Error::other(why))
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: `base`/`size` is the reservation made in `new`, mappings included.
        unsafe { libc::munmap(self.base.cast(), self.size as usize) };
    }
}

impl VhostUserFrontendReqHandlerMut for Window {
    fn shmem_map(&mut self, req: &VhostUserMMap, fd: &dyn AsRawFd) -> HandlerResult<u64> {
        let (shmid, off, len, fd_off, flags) =
            (req.shmid, req.shm_offset, req.len, req.fd_offset, req.flags);
        self.log.push(format!("map {off:#x}+{len:#x}"));
        if shmid != 0 || len == 0 || off.checked_add(len).is_none_or(|e| e > self.size) {
            return self.refuse(format!("map out of the window: {off:#x}+{len:#x}"));
        }
        if self
            .maps
            .iter()
            .any(|m| off < m.shm_offset + m.len && m.shm_offset < off + len)
        {
            return self.refuse(format!("map overlapping a mapping: {off:#x}+{len:#x}"));
        }
        let writable = flags & VhostUserMMapFlags::WRITABLE.bits() != 0;
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        map_fixed(self.base, off, len, prot, fd.as_raw_fd(), fd_off)?;
        self.maps.push(Mapping {
            shm_offset: off,
            len,
            fd_offset: fd_off,
            writable,
        });
        Ok(0)
    }

    fn shmem_unmap(&mut self, req: &VhostUserMMap) -> HandlerResult<u64> {
        let (off, len) = (req.shm_offset, req.len);
        self.log.push(format!("unmap {off:#x}+{len:#x}"));
        let Some(i) = self
            .maps
            .iter()
            .position(|m| m.shm_offset == off && m.len == len)
        else {
            return self.refuse(format!("unmap of no mapping: {off:#x}+{len:#x}"));
        };
        self.maps.remove(i);
        map_fixed(self.base, off, len, libc::PROT_NONE, -1, 0)?;
        Ok(0)
    }
}

/// mmap(MAP_FIXED) of `fd` (or anonymous PROT_NONE for -1) at `base + off`.
fn map_fixed(
    base: *mut u8,
    off: u64,
    len: u64,
    prot: i32,
    fd: RawFd,
    fd_off: u64,
) -> std::io::Result<()> {
    let flags = libc::MAP_FIXED
        | if fd < 0 {
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE
        } else {
            libc::MAP_SHARED
        };
    // SAFETY: the target range lies inside the window's reservation (checked by the caller
    // against the window size), which only this Window uses.
    let p = unsafe {
        libc::mmap(
            base.add(off as usize).cast(),
            len as usize,
            prot,
            flags,
            fd,
            fd_off as i64,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The frontend end of the backend request channel, served on its own thread.
pub struct Vmm {
    pub window: Arc<Mutex<Window>>,
    tx_fd: RawFd,
    thread: Option<JoinHandle<()>>,
    handler: Option<FrontendReqHandler<Mutex<Window>>>,
}

impl Vmm {
    /// A window of `size` bytes and a channel to hand to the daemon.
    pub fn new(size: u64) -> Self {
        let window = Arc::new(Mutex::new(Window::new(size)));
        let mut handler = FrontendReqHandler::new(window.clone()).expect("backend channel");
        handler.set_reply_ack_flag(true);
        Self {
            window,
            tx_fd: handler.get_tx_raw_fd(),
            thread: None,
            handler: Some(handler),
        }
    }

    /// The window's size.
    pub fn size(&self) -> u64 {
        self.window.lock().unwrap().size
    }

    /// The fd to send with SET_BACKEND_REQ_FD.
    pub fn channel_fd(&self) -> impl AsRawFd {
        self.tx_fd
    }

    /// Starts serving the channel (after SET_BACKEND_REQ_FD was sent), and closes this
    /// process's copy of the daemon's end, as QEMU does: only then does the daemon closing
    /// its end show here as end-of-file.
    pub fn serve(&mut self) {
        let mut handler = self.handler.take().expect("served once");
        let null = fs::File::open("/dev/null").expect("open /dev/null");
        // SAFETY: `tx_fd` is the handler's copy of the end the daemon now holds; the handler
        // never uses it again except to close it when dropped. dup2 atomically makes that
        // fd number refer to /dev/null, which closes our reference to the socket.
        let rc = unsafe { libc::dup2(null.as_raw_fd(), self.tx_fd) };
        assert_eq!(rc, self.tx_fd, "dup2: {}", std::io::Error::last_os_error());
        self.thread = Some(std::thread::spawn(move || {
            // A refused request is answered with an error ack and the channel goes on, as
            // the test wants to see the daemon keep serving; EOF ends it.
            loop {
                match handler.handle_request() {
                    Ok(_) => {}
                    Err(vhost::vhost_user::Error::ReqHandlerError(_)) => {}
                    Err(_) => return,
                }
            }
        }));
    }

    /// Whether the channel reached end-of-file (the daemon closed its end).
    pub fn channel_closed(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// The window's current mappings.
    pub fn maps(&self) -> Vec<Mapping> {
        self.window.lock().unwrap().maps.clone()
    }

    /// Requests a strict frontend would have refused.
    pub fn refused(&self) -> Vec<String> {
        self.window.lock().unwrap().refused.clone()
    }
}
