//! Serving a mounted session: reader threads, each on its own clone of the /dev/fuse fd,
//! read a request, hand it to the [`Server`], and write the reply back.
//!
//! Every thread polls its fd together with a stop eventfd: the stop (SIGTERM/SIGINT, or one
//! thread seeing the mount go away) wakes them all, requests in flight finish first.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::thread;

use super::FusedevError;
use super::stop::{Ended, Stop};
use super::uring::Rings;
use crate::fuse::abi;
use crate::fuse::filesystem::FileSystem;
use crate::fuse::io::mem::{VecReader, VecWriter};
use crate::fuse::server::Server;
use crate::fuse::wait_budget::WaitBudget;
use crate::oslib::fusedev as dev;

/// Room for the largest request: a WRITE of `MAX_WRITE` bytes after its headers (the
/// kernel refuses smaller read buffers), plus a page of slack for the other requests.
pub const REQUEST_BUFFER: usize = abi::MAX_WRITE as usize + 4096;
/// Room for the largest reply: a READ of `MAX_WRITE` bytes after its header, or a full
/// READDIR page set.
pub const REPLY_BUFFER: usize = abi::MAX_WRITE as usize + 4096;

/// Serves the session with one reader thread per fd of `readers` (clones of the session
/// fd), and one thread per ring entry of `rings` (FUSE over io_uring), until `stop` or the
/// unmount; returns how it ended.
///
/// # Errors
/// A thread could not be started, hit an unexpected read error, or a ring failed.
pub fn serve<F: FileSystem + 'static>(
    server: Arc<Server<F>>,
    readers: Vec<OwnedFd>,
    stop: Arc<Stop>,
    rings: Option<&mut Rings>,
) -> Result<Ended, FusedevError> {
    let mut handles = Vec::with_capacity(readers.len());
    // The reader threads serve the same requests: a lock wait may not take the last one.
    let budget = Arc::new(WaitBudget::new(readers.len()));
    for (i, fd) in readers.into_iter().enumerate() {
        let (srv, stp, budget) = (server.clone(), stop.clone(), budget.clone());
        let spawned = thread::Builder::new()
            .name(format!("vhostfsd-fuse{i}"))
            .spawn(move || {
                let ended = reader_loop(&srv, fd.as_fd(), &stp, &budget);
                // Whatever ended this thread ends the session: wake the others, those
                // waiting for a lock too.
                stp.request();
                srv.fs().abort_waits();
                ended.map_err(FusedevError::Read)
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                stop.request();
                let _ = join(handles);
                return Err(FusedevError::Thread(e));
            }
        }
    }
    if let Some(rings) = rings {
        match rings.spawn(&server, &stop) {
            Ok(h) => handles.extend(h),
            Err(e) => {
                stop.request();
                let _ = join(handles);
                return Err(e);
            }
        }
    }
    join(handles)
}

/// Joins every thread; the first error (or else the unmount) is the session's end.
fn join(
    handles: Vec<thread::JoinHandle<Result<Ended, FusedevError>>>,
) -> Result<Ended, FusedevError> {
    let mut result = Ok(Ended::Stopped);
    for h in handles {
        match h.join() {
            Ok(Ok(Ended::InitRefused)) => result = Err(FusedevError::InitRefused),
            Ok(Ok(Ended::Unmounted)) if result.is_ok() => result = Ok(Ended::Unmounted),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                if result.is_ok() {
                    result = Err(e);
                }
            }
            Err(_) => result = Err(FusedevError::ThreadPanicked),
        }
    }
    result
}

/// Serves one request read from /dev/fuse, leaving the reply at the start of `reply`;
/// returns its length, or `None` when there is nothing to send (FORGET, INTERRUPT, or a
/// request too broken to answer).
fn answer<F: FileSystem>(
    server: &Server<F>,
    request: &[u8],
    reply: &Rc<RefCell<Vec<u8>>>,
    budget: &WaitBudget,
) -> Option<usize> {
    let (r, w) = (VecReader::new(request), VecWriter::over(reply.clone()));
    match server.handle_message_in(r, w, Some(budget)) {
        Ok(0) => None,
        Ok(len) => Some(len),
        Err(e) => {
            log::warn!("/dev/fuse request dropped without a reply: {e}");
            None
        }
    }
}

/// One reader thread: poll, read one request, serve it, write the reply.
fn reader_loop<F: FileSystem>(
    server: &Server<F>,
    fd: BorrowedFd<'_>,
    stop: &Stop,
    budget: &WaitBudget,
) -> io::Result<Ended> {
    let mut request = vec![0u8; REQUEST_BUFFER];
    let reply = Rc::new(RefCell::new(vec![0u8; REPLY_BUFFER]));
    loop {
        let revents = dev::poll_in(&[fd, stop.fd()], -1)?;
        if revents[1] != 0 {
            return Ok(Ended::Stopped);
        }
        let n = match dev::read(fd, &mut request) {
            Ok(n) => n,
            // Another thread took it, or it was interrupted before we read it.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOENT)) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(Ended::Unmounted),
            Err(e) => return Err(e),
        };
        let answered = answer(server, &request[..n], &reply, budget);
        let is_init = request.get(4..8) == Some(&abi::opcode::INIT.to_ne_bytes()[..]);
        if let Some(written) = answered {
            write_reply(fd, &reply.borrow()[..written]);
        }
        if is_init && !server.initialized() {
            return Ok(Ended::InitRefused);
        }
    }
}

/// Writes one reply. A request interrupted meanwhile (ENOENT) no longer waits for it; after
/// an unmount (ENODEV) the next read ends the thread.
fn write_reply(fd: BorrowedFd<'_>, reply: &[u8]) {
    match dev::write(fd, reply) {
        Ok(_) => {}
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) => {
            log::debug!("reply not delivered: {e}");
        }
        Err(e) => log::warn!("cannot write a reply to /dev/fuse: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use vm_memory::ByteValued;

    use super::*;
    use crate::fuse::abi::{self, opcode};
    use crate::fuse::testing::RequestBuilder;
    use crate::passthrough::PassthroughFs;

    struct Session {
        dir: tempfile::TempDir,
        server: Server<PassthroughFs>,
        reply: Rc<RefCell<Vec<u8>>>,
        unique: u64,
    }

    impl Session {
        /// A server over a fresh directory holding `outside/secret` next to `shared/`,
        /// INIT done as the kernel does it.
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("shared")).unwrap();
            std::fs::write(dir.path().join("secret"), b"s").unwrap();
            let cfg = crate::passthrough::Config {
                root_dir: dir.path().join("shared"),
                ..Default::default()
            };
            let proc_fd = std::fs::File::open("/proc/self/fd").unwrap();
            let fs = PassthroughFs::new(cfg, proc_fd).unwrap();
            let mut s = Self {
                dir,
                server: Server::new(Arc::new(fs)),
                reply: Rc::new(RefCell::new(vec![0; REPLY_BUFFER])),
                unique: 0,
            };
            let init = abi::InitIn {
                major: abi::KERNEL_VERSION,
                minor: abi::KERNEL_MINOR_VERSION,
                max_readahead: 1 << 17,
                flags: u32::MAX,
                flags2: u32::MAX,
                ..Default::default()
            };
            assert_eq!(s.errno(opcode::INIT, 0, init.as_slice()), 0);
            s
        }

        fn send(&mut self, raw: &[u8]) -> Option<Vec<u8>> {
            answer(&self.server, raw, &self.reply, &WaitBudget::new(1))
                .map(|n| self.reply.borrow()[..n].to_vec())
        }

        fn request(&mut self, op: u32, node: u64, body: &[u8]) -> Vec<u8> {
            self.unique += 1;
            RequestBuilder::new(op, node)
                .unique(self.unique)
                .build(&[body], &[])
        }

        /// The errno of the reply (0: success).
        fn errno(&mut self, op: u32, node: u64, body: &[u8]) -> i32 {
            let req = self.request(op, node, body);
            let out = self.send(&req).expect("a reply");
            let mut h = abi::OutHeader::default();
            h.as_mut_slice()
                .copy_from_slice(&out[..size_of::<abi::OutHeader>()]);
            assert_eq!(h.unique, self.unique, "reply to the request sent");
            assert_eq!(h.len as usize, out.len(), "reply length in its header");
            -h.error
        }
    }

    #[test]
    fn broken_requests_get_an_errno_or_nothing_and_the_session_goes_on() {
        let mut s = Session::new();
        // Shorter than a header: nothing can be answered.
        assert!(s.send(&[1, 2, 3]).is_none());
        // A header whose length disagrees with what was read.
        let mut req = s.request(opcode::GETATTR, abi::ROOT_ID, &[0; 16]);
        req[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        let out = s.send(&req).expect("an error reply");
        assert_ne!(i32::from_ne_bytes(out[4..8].try_into().unwrap()), 0);
        // Unknown opcode, unknown node.
        assert_eq!(s.errno(9999, abi::ROOT_ID, &[]), libc::ENOSYS);
        assert_eq!(s.errno(opcode::GETATTR, 0xdead_beef, &[0; 16]), libc::EBADF);
        // A WRITE claiming more payload than it carries.
        let w = abi::WriteIn {
            size: 1 << 30,
            ..Default::default()
        };
        assert_ne!(s.errno(opcode::WRITE, abi::ROOT_ID, w.as_slice()), 0);
        // Still serving.
        assert_eq!(s.errno(opcode::GETATTR, abi::ROOT_ID, &[0; 16]), 0);
    }

    #[test]
    fn names_cannot_leave_the_shared_directory() {
        let mut s = Session::new();
        // ".." of the root is the root.
        let req = s.request(opcode::LOOKUP, abi::ROOT_ID, b"..\0");
        let out = s.send(&req).expect("a reply");
        let attr_ino = size_of::<abi::OutHeader>() + 40;
        let ino = u64::from_ne_bytes(out[attr_ino..attr_ino + 8].try_into().unwrap());
        let shared = std::fs::metadata(s.dir.path().join("shared")).unwrap();
        assert_eq!(ino, std::os::unix::fs::MetadataExt::ino(&shared));
        for name in [&b"../secret\0"[..], b"/secret\0", b"a/../../secret\0"] {
            let e = s.errno(opcode::LOOKUP, abi::ROOT_ID, name);
            assert!(
                e == libc::EINVAL || e == libc::ENOENT,
                "{name:?}: errno {e}"
            );
        }
        // Not NUL-terminated.
        assert_ne!(s.errno(opcode::LOOKUP, abi::ROOT_ID, b"secret"), 0);
        assert_eq!(s.errno(opcode::GETATTR, abi::ROOT_ID, &[0; 16]), 0);
    }
}
