//! Guest threads that read one queue's READ replies (`--readers N`), as in a guest with
//! several vCPUs whose processes all read through the one request queue (QEMU and libvirt
//! offer one by default): the queue's thread handles the ring and checks the data of its own
//! share of the slots, and each of the `N - 1` other threads checks the data of its share
//! before the slot is used again. With one reader the queue's thread checks everything.
//!
//! Checking data is the guest's side of a large read: it reads every byte the daemon just
//! wrote from another core. On one thread that alone can use most of a core, so one thread
//! cannot tell whether a daemon would serve one queue faster on more cores.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc;
use std::thread::Scope;

use vhostfsd_test_vmm::guest_memory::GuestMemory;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::ring;
use crate::share;

/// The data of one READ reply to check: slot, guest address, length, file offset.
struct Job {
    slot: usize,
    addr: u64,
    len: usize,
    off: u64,
}

/// The reader threads of one queue, for one workload run.
pub struct Readers {
    jobs: Vec<mpsc::Sender<Job>>,
    checked: mpsc::Receiver<(usize, Result<(), u64>)>,
    /// Written after each check: wakes the queue's thread waiting for replies.
    wake: EventFd,
}

impl Readers {
    /// Starts `n - 1` reader threads in `scope`, checking READ data in `mem`; `None` for a
    /// single reader.
    pub fn start<'scope>(
        scope: &'scope Scope<'scope, '_>,
        mem: &'scope GuestMemory,
        n: usize,
    ) -> Option<Self> {
        if n <= 1 {
            return None;
        }
        let wake = EventFd::new(EFD_NONBLOCK).expect("create the readers' eventfd");
        let (done_tx, checked) = mpsc::channel();
        let jobs = (1..n)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<Job>();
                let (done_tx, wake) = (done_tx.clone(), wake.try_clone().expect("dup eventfd"));
                scope.spawn(move || {
                    for job in rx {
                        let data = ring::bytes(mem, job.addr, job.len);
                        let verdict = share::check(data, share::DATA_SEED, job.off);
                        if done_tx.send((job.slot, verdict)).is_err() {
                            return;
                        }
                        wake.write(1).expect("wake the queue's thread");
                    }
                });
                tx
            })
            .collect();
        Some(Self {
            jobs,
            checked,
            wake,
        })
    }

    /// Whether another thread reads slot `slot`'s replies (else the queue's thread does).
    pub fn reads_elsewhere(&self, slot: usize) -> bool {
        self.reader_of(slot).is_some()
    }

    /// The reader thread of slot `slot`; `None` for the queue's own thread.
    fn reader_of(&self, slot: usize) -> Option<usize> {
        (slot % (self.jobs.len() + 1)).checked_sub(1)
    }

    /// Hands the `len` bytes at `addr`, READ from file offset `off` into slot `slot`, to
    /// the slot's reader.
    pub fn check(&self, slot: usize, addr: u64, len: usize, off: u64) {
        let reader = self
            .reader_of(slot)
            .expect("the queue's thread reads this slot itself");
        self.jobs[reader]
            .send(Job {
                slot,
                addr,
                len,
                off,
            })
            .expect("a reader thread ended early");
    }

    /// Appends the slots checked since the last call: each with the first bad offset, if
    /// any.
    pub fn take_checked(&self, out: &mut Vec<(usize, Result<(), u64>)>) {
        // Cleared first: a check finished after the channel is drained wakes the next wait.
        let _ = self.wake.read();
        out.extend(self.checked.try_iter());
    }

    /// Readable when checks are done: the queue's thread waits on it beside the call fd.
    pub fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }
}

/// Checks that a reader thread reports data that differs from the file, and passes data
/// that does not (run by the smoke test: a check that never fails would measure nothing).
pub fn self_check() {
    use vm_memory::{Bytes, GuestAddress};

    let mem = GuestMemory::new(1 << 20);
    let mut data = vec![0u8; 64 << 10];
    share::fill(&mut data, share::DATA_SEED, 4096);
    mem.mem()
        .write_slice(&data, GuestAddress(0))
        .expect("write guest memory");
    data[40_000] ^= 1;
    mem.mem()
        .write_slice(&data, GuestAddress(0x10000))
        .expect("write guest memory");
    std::thread::scope(|sc| {
        let readers = Readers::start(sc, &mem, 2).expect("two readers");
        assert!(readers.reads_elsewhere(1) && !readers.reads_elsewhere(2));
        readers.check(1, 0, data.len(), 4096);
        readers.check(3, 0x10000, data.len(), 4096);
        let mut checked = Vec::new();
        while checked.len() < 2 {
            readers.take_checked(&mut checked);
            std::thread::yield_now();
        }
        checked.sort_by_key(|c| c.0);
        assert_eq!(checked, [(1, Ok(())), (3, Err(4096 + 40_000 / 8 * 8))]);
    });
}
