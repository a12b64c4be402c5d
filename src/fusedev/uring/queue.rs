//! The thread of one ring entry: it registers the entry with the kernel, then serves one
//! request per completion and answers it with COMMIT_AND_FETCH, which also fetches the
//! next. Each entry has its own io_uring (two SQEs: the entry's command and a poll on the
//! stop eventfd), so a request that blocks (a lock wait) holds only its own entry.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vm_memory::ByteValued;

use super::UringError;
use super::entry::{self, EntryMemory};
use super::gate::RegisterGate;
use crate::fuse::abi::{self, init_flags, uring};
use crate::fuse::filesystem::FileSystem;
use crate::fuse::server::Server;
use crate::fuse::wait_budget::WaitBudget;
use crate::fusedev::stop::{Ended, Stop};
use crate::oslib::uring::{CMD_AREA, CmdRing};

/// `user_data` of the entry's command.
const ENTRY: u64 = 1;
/// `user_data` of the poll on the stop eventfd.
const STOP: u64 = 2;
/// How long a REGISTER may keep meeting EAGAIN (the kernel has not finished INIT yet).
const REGISTER_PATIENCE: Duration = Duration::from_secs(10);

/// One ring entry with everything its thread needs.
#[derive(Debug)]
pub struct RingEntry {
    qid: u16,
    ring: CmdRing,
    memory: EntryMemory,
    /// What REGISTER points the kernel at; lives as long as the entry.
    iovecs: entry::RegisterIovecs,
}

/// The 80-byte command area of a FUSE URING_CMD.
fn cmd_area(qid: u16, commit_id: u64) -> [u8; CMD_AREA] {
    let req = abi::UringCmdReq {
        flags: 0,
        commit_id,
        qid,
        padding: [0; 6],
    };
    let mut cmd = [0u8; CMD_AREA];
    cmd[..std::mem::size_of::<abi::UringCmdReq>()].copy_from_slice(req.as_slice());
    cmd
}

/// The command this entry sent last, to send again after EAGAIN/EINTR.
#[derive(Debug, Clone, Copy)]
enum Sent {
    Register,
    Commit(u64),
}

impl RingEntry {
    /// Entry `qid` of a queue: its own io_uring and memory.
    ///
    /// # Errors
    /// `io_uring_setup` or the mapping of the buffers failed.
    pub fn new(qid: u16) -> io::Result<Self> {
        let ring = CmdRing::new(2)?;
        let memory = EntryMemory::new()?;
        let iovecs = memory.iovecs();
        Ok(Self {
            qid,
            ring,
            memory,
            iovecs,
        })
    }

    /// The kernel queue this entry serves.
    pub fn qid(&self) -> u16 {
        self.qid
    }

    fn push(&mut self, dev: BorrowedFd<'_>, cmd: Sent) -> io::Result<()> {
        let (op, area, addr, len) = match cmd {
            Sent::Register => (
                uring::CMD_REGISTER,
                cmd_area(self.qid, 0),
                &self.iovecs as *const entry::RegisterIovecs as u64,
                2,
            ),
            Sent::Commit(id) => (uring::CMD_COMMIT_AND_FETCH, cmd_area(self.qid, id), 0, 0),
        };
        // SAFETY: the iovecs and the memory they describe belong to this entry, which its
        // owner keeps (mapped) until the thread serving it has exited (see `Rings`); a
        // commit points to no memory.
        unsafe { self.ring.push_cmd(dev, op, area, addr, len, ENTRY) }
    }
}

/// Waits until INIT is done (or a stop): ring entries can only be registered after it.
fn wait_for_init<F: FileSystem>(server: &Server<F>, stop: &Stop) -> io::Result<bool> {
    loop {
        if server.initialized() {
            return Ok(true);
        }
        if stop.wait(Duration::from_millis(2))? {
            return Ok(false);
        }
    }
}

/// Serves one ring entry until a stop or the unmount, counting the requests in `served`.
///
/// # Errors
/// INIT did not agree on FUSE over io_uring, the kernel refused the entry, or a command
/// failed ([`UringError`]).
pub fn run<F: FileSystem>(
    server: &Server<F>,
    dev: BorrowedFd<'_>,
    ent: &mut RingEntry,
    stop: &Stop,
    served: &AtomicU64,
    budget: &WaitBudget,
    gate: &RegisterGate,
) -> Result<Ended, UringError> {
    let held = gate.holds(ent.qid);
    let ended = register(server, dev, ent, stop, gate);
    if !held {
        // Registered, or never will: the last queue may go on either way.
        gate.registered();
    }
    if !ended? {
        return Ok(Ended::Stopped);
    }
    // Counted as serving its queue once the kernel has it (a REGISTER the kernel refuses
    // later ends the rings, and the kernel serves through /dev/fuse then).
    budget.add_units(1);
    gate.count_registered();
    serve(server, dev, ent, served, budget)
}

/// Waits for INIT (and, for the last queue, for every other entry: see [`RegisterGate`]),
/// then submits the entry's REGISTER; returns `false` on a stop.
fn register<F: FileSystem>(
    server: &Server<F>,
    dev: BorrowedFd<'_>,
    ent: &mut RingEntry,
    stop: &Stop,
    gate: &RegisterGate,
) -> Result<bool, UringError> {
    if !wait_for_init(server, stop).map_err(UringError::Wait)? {
        return Ok(false);
    }
    if server.agreed_flags() & init_flags::OVER_IO_URING == 0 {
        return Err(UringError::NotNegotiated);
    }
    if gate.holds(ent.qid) {
        while !gate.wait(Duration::from_millis(2)) {
            if stop.wait(Duration::ZERO).map_err(UringError::Wait)? {
                return Ok(false);
            }
        }
    }
    ent.ring
        .push_poll_in(stop.fd(), STOP)
        .map_err(UringError::Submit)?;
    ent.push(dev, Sent::Register).map_err(UringError::Submit)?;
    // The kernel handles a REGISTER inline: once this returns, the entry is on its queue.
    ent.ring.submit().map_err(UringError::Submit)?;
    Ok(true)
}

/// Serves the registered entry until a stop or the unmount.
fn serve<F: FileSystem>(
    server: &Server<F>,
    dev: BorrowedFd<'_>,
    ent: &mut RingEntry,
    served: &AtomicU64,
    budget: &WaitBudget,
) -> Result<Ended, UringError> {
    let mut sent = Sent::Register;
    let started = Instant::now();
    loop {
        ent.ring.submit_and_wait().map_err(UringError::Submit)?;
        for c in ent.ring.completions() {
            if c.user_data == STOP {
                return Ok(Ended::Stopped);
            }
            match (c.result, sent) {
                (0, _) => {
                    // SAFETY: the completion hands the entry to us until the next commit.
                    let (headers, payload) = unsafe { ent.memory.buffers() };
                    sent = Sent::Commit(entry::serve(server, headers, payload, budget));
                    served.fetch_add(1, Ordering::Relaxed);
                }
                (r, Sent::Register)
                    if r == -libc::EAGAIN && started.elapsed() < REGISTER_PATIENCE =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                (r, _) if r == -libc::EINTR || r == -libc::EAGAIN => {}
                (r, _)
                    if [
                        libc::ENOTCONN,
                        libc::ECONNABORTED,
                        libc::ECANCELED,
                        libc::ENODEV,
                    ]
                    .contains(&-r) =>
                {
                    return Ok(Ended::Unmounted);
                }
                (r, Sent::Register) => {
                    return Err(UringError::Register(io::Error::from_raw_os_error(-r)));
                }
                (r, Sent::Commit(_)) => {
                    return Err(UringError::Commit(io::Error::from_raw_os_error(-r)));
                }
            }
            ent.push(dev, sent).map_err(UringError::Submit)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_area_holds_the_queue_and_commit_id() {
        let c = cmd_area(3, 0x1122_3344_5566_7788);
        assert_eq!(u64::from_ne_bytes(c[0..8].try_into().unwrap()), 0, "flags");
        assert_eq!(
            u64::from_ne_bytes(c[8..16].try_into().unwrap()),
            0x1122_3344_5566_7788
        );
        assert_eq!(u16::from_ne_bytes(c[16..18].try_into().unwrap()), 3);
        assert!(c[18..].iter().all(|b| *b == 0));
    }
}
