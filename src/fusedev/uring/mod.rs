//! FUSE over io_uring (Linux >= 6.14 with CONFIG_FUSE_IO_URING, enabled by the `fuse`
//! module parameter `enable_uring`): requests arrive in ring entries the daemon registered
//! with `FUSE_IO_URING_CMD_REGISTER`, and each reply goes back with
//! `FUSE_IO_URING_CMD_COMMIT_AND_FETCH`, which also fetches the next request: one
//! `io_uring_enter` per request instead of a `read` and a `write` on /dev/fuse.
//!
//! - [`entry`]: one entry's buffers and serving the request in them (hostile-input safe);
//! - [`queue`]: the thread of one entry (register, serve, commit and fetch, stop).
//!
//! The kernel keeps one queue per possible CPU and queues a request on the queue of the
//! CPU the caller runs on; it uses the rings once every queue has an entry, until then (and
//! for FORGET and INTERRUPT always) requests come through /dev/fuse, so the /dev/fuse reader
//! threads keep running.

pub mod entry;
pub mod gate;
pub mod queue;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use gate::RegisterGate;
use queue::RingEntry;

use super::FusedevError;
use super::stop::{Ended, Stop};
use crate::fuse::abi::init_flags;
use crate::fuse::filesystem::FileSystem;
use crate::fuse::server::Server;
use crate::fuse::wait_budget::WaitBudget;
use crate::oslib;

/// The module parameter that enables FUSE over io_uring (`N` by default).
pub const ENABLE_PARAM: &str = "/sys/module/fuse/parameters/enable_uring";
/// Fewest entries per queue: a request waiting for a lock holds its entry, and the
/// kernel only queues a caller's requests on its own CPU's queue.
pub const MIN_DEPTH: usize = 8;
/// Lists the CPUs the kernel sizes its queues for (`num_possible_cpus()`).
const POSSIBLE_CPUS: &str = "/sys/devices/system/cpu/possible";

/// FUSE over io_uring policy (`--io-uring`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum UringMode {
    /// Use it when the kernel enables it, read and write /dev/fuse otherwise.
    #[default]
    Auto,
    /// Require it: fail when the kernel does not enable it.
    On,
    /// Read and write /dev/fuse.
    Off,
}

/// Errors of FUSE over io_uring.
#[derive(Debug, thiserror::Error)]
pub enum UringError {
    #[error(
        "--io-uring on: FUSE over io_uring is disabled in the kernel ({ENABLE_PARAM} is N): \
         enable it with `echo Y > {ENABLE_PARAM}` as root, or use --io-uring auto"
    )]
    Disabled,
    #[error(
        "--io-uring on: this kernel has no FUSE over io_uring ({ENABLE_PARAM} is missing): \
         it needs Linux >= 6.14 built with CONFIG_FUSE_IO_URING and the fuse module loaded"
    )]
    Unsupported,
    #[error(
        "cannot set up the io_uring queues: check the kernel.io_uring_disabled sysctl and \
         that no seccomp policy denies io_uring_setup"
    )]
    Setup(#[source] io::Error),
    #[error(
        "--io-uring on: the kernel did not agree on FUSE over io_uring in INIT: check that \
         {ENABLE_PARAM} is Y"
    )]
    NotNegotiated,
    #[error("the kernel refused a FUSE ring entry (FUSE_IO_URING_CMD_REGISTER)")]
    Register(#[source] io::Error),
    #[error("the kernel failed a FUSE reply (FUSE_IO_URING_CMD_COMMIT_AND_FETCH)")]
    Commit(#[source] io::Error),
    #[error("cannot submit to an io_uring (io_uring_enter)")]
    Submit(#[source] io::Error),
    #[error("waiting for INIT before registering ring entries failed")]
    Wait(#[source] io::Error),
    #[error("cannot duplicate the /dev/fuse session fd for the io_uring queues")]
    Dup(#[source] io::Error),
    #[error("cannot start an io_uring queue thread")]
    Thread(#[source] io::Error),
}

impl UringError {
    /// Whether the kernel goes on serving through /dev/fuse after this error (so `auto`
    /// can carry on without the rings).
    fn falls_back(&self) -> bool {
        matches!(self, Self::NotNegotiated | Self::Register(_))
    }
}

/// What the kernel says about FUSE over io_uring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelSupport {
    Enabled,
    Disabled,
    Unsupported,
}

/// Reads the module parameter at `param` (`Y`/`N`; missing: no FUSE over io_uring).
pub fn kernel_support_at(param: &Path) -> KernelSupport {
    match std::fs::read_to_string(param) {
        Ok(v) if matches!(v.trim(), "Y" | "y" | "1") => KernelSupport::Enabled,
        Ok(_) => KernelSupport::Disabled,
        Err(_) => KernelSupport::Unsupported,
    }
}

/// Number of CPUs in a kernel CPU list such as `0-3,6,8-9`; `None` if it does not parse.
fn count_cpus(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.trim().split(',') {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().ok()?.checked_sub(a.parse().ok()?)? + 1,
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    Some(n)
}

/// The kernel's number of queues: one per possible CPU.
fn queue_count() -> usize {
    std::fs::read_to_string(POSSIBLE_CPUS)
        .ok()
        .and_then(|l| count_cpus(&l))
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The ring entries of one session, made before serving starts.
#[derive(Debug)]
pub struct Rings {
    entries: Vec<RingEntry>,
    dev: Arc<OwnedFd>,
    required: bool,
    queues: usize,
    depth: usize,
    served: Arc<AtomicU64>,
    /// Entries whose thread ended: kept (with their memory mapped) until `Rings` is dropped
    /// after every thread was joined, so the kernel never writes to unmapped memory.
    retired: Arc<Mutex<Vec<RingEntry>>>,
}

/// What the daemon needs to know of the kernel, read from /sys before any sandbox hides
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    pub support: KernelSupport,
    /// The kernel's number of queues (possible CPUs).
    pub queues: usize,
}

/// Reads what this kernel says about FUSE over io_uring.
pub fn probe_kernel() -> Kernel {
    Kernel {
        support: kernel_support_at(Path::new(ENABLE_PARAM)),
        queues: queue_count(),
    }
}

/// Checks `mode` against the kernel's `support` before anything is mounted.
///
/// # Errors
/// `--io-uring on` and the kernel does not enable FUSE over io_uring.
pub fn check(mode: UringMode, support: KernelSupport) -> Result<(), UringError> {
    match (mode, support) {
        (UringMode::On, KernelSupport::Disabled) => Err(UringError::Disabled),
        (UringMode::On, KernelSupport::Unsupported) => Err(UringError::Unsupported),
        _ => Ok(()),
    }
}

/// Makes the ring entries for `mode`, given what the kernel said (from [`probe_kernel`]):
/// `depth` entries per queue over the session fd `dev`. `Ok(None)`:
/// serve /dev/fuse only (`off`, or `auto` where the kernel or io_uring is not available,
/// which is logged).
///
/// # Errors
/// `--io-uring on` and FUSE over io_uring is not available.
pub fn prepare(
    mode: UringMode,
    dev: BorrowedFd<'_>,
    depth: usize,
    kernel: Kernel,
) -> Result<Option<Rings>, UringError> {
    let support = kernel.support;
    let required = match mode {
        UringMode::Off => return Ok(None),
        UringMode::On => true,
        UringMode::Auto => false,
    };
    if support != KernelSupport::Enabled {
        check(mode, support)?;
        log::info!(
            "FUSE over io_uring is not available ({ENABLE_PARAM}: {support:?}): serving \
             /dev/fuse with read/write"
        );
        return Ok(None);
    }
    match make(dev, kernel.queues, depth.max(1), required) {
        Ok(r) => Ok(Some(r)),
        Err(e) if !required => {
            log::warn!("{e} ({}): serving /dev/fuse with read/write", source_of(&e));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn source_of(e: &UringError) -> String {
    std::error::Error::source(e).map_or_else(String::new, |s| s.to_string())
}

fn make(
    dev: BorrowedFd<'_>,
    queues: usize,
    depth: usize,
    required: bool,
) -> Result<Rings, UringError> {
    let dev = oslib::fs::dup(dev).map_err(UringError::Dup)?;
    let mut entries = Vec::with_capacity(queues * depth);
    for qid in 0..queues {
        let qid = u16::try_from(qid)
            .map_err(|_| UringError::Setup(io::ErrorKind::InvalidInput.into()))?;
        for _ in 0..depth {
            entries.push(RingEntry::new(qid).map_err(UringError::Setup)?);
        }
    }
    Ok(Rings {
        entries,
        dev: Arc::new(dev),
        required,
        queues,
        depth,
        served: Arc::default(),
        retired: Arc::default(),
    })
}

impl Rings {
    /// INIT flags to offer for these rings.
    pub fn init_flags(&self) -> u64 {
        init_flags::OVER_IO_URING
    }

    /// Requests served through the rings so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Starts one thread per entry; they register once INIT is done. Whatever ends one
    /// with the unmount or an error stops the session; in `auto` mode an INIT without
    /// FUSE over io_uring, or an entry the kernel refuses, only ends the rings (the kernel
    /// then serves through /dev/fuse).
    ///
    /// # Errors
    /// A thread could not be started.
    pub fn spawn<F: FileSystem + 'static>(
        &mut self,
        server: &Arc<Server<F>>,
        stop: &Arc<Stop>,
    ) -> Result<Vec<JoinHandle<Result<Ended, FusedevError>>>, FusedevError> {
        log::info!(
            "FUSE over io_uring: {} queue(s) of {} entries, used once INIT agrees",
            self.queues,
            self.depth
        );
        let fell_back = Arc::new(AtomicBool::new(false));
        // The kernel queues a request on its caller's CPU queue and only that queue's
        // entries serve it: one lock-wait budget per queue, counting registered entries.
        let budgets: Vec<Arc<WaitBudget>> = (0..self.queues).map(|_| Arc::default()).collect();
        let gate = Arc::new(RegisterGate::new(self.queues, self.depth));
        let mut handles = Vec::with_capacity(self.entries.len());
        for (i, mut ent) in self.entries.drain(..).enumerate() {
            let (server, stop, dev) = (server.clone(), stop.clone(), self.dev.clone());
            let (served, retired) = (self.served.clone(), self.retired.clone());
            let (required, fell_back) = (self.required, fell_back.clone());
            let budget = budgets[usize::from(ent.qid())].clone();
            let gate = gate.clone();
            let h = thread::Builder::new()
                .name(format!("vhostfsd-ring{i}"))
                .spawn(move || {
                    let ended = queue::run(
                        &server,
                        dev.as_fd(),
                        &mut ent,
                        &stop,
                        &served,
                        &budget,
                        &gate,
                    );
                    retired
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(ent);
                    match ended {
                        Ok(Ended::Stopped) => Ok(Ended::Stopped),
                        Err(e) if !required && e.falls_back() => {
                            if !fell_back.swap(true, Ordering::Relaxed) {
                                log::warn!("{e}: serving /dev/fuse with read/write");
                            }
                            Ok(Ended::Stopped)
                        }
                        other => {
                            stop.request();
                            server.fs().abort_waits();
                            other.map_err(FusedevError::from)
                        }
                    }
                })
                .map_err(|e| FusedevError::from(UringError::Thread(e)))?;
            handles.push(h);
        }
        Ok(handles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_count_like_the_kernel() {
        assert_eq!(count_cpus("0\n"), Some(1));
        assert_eq!(count_cpus("0-1\n"), Some(2));
        assert_eq!(count_cpus("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpus("3-1"), None);
        assert_eq!(count_cpus("x"), None);
    }

    #[test]
    fn module_parameter_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("enable_uring");
        assert_eq!(kernel_support_at(&p), KernelSupport::Unsupported);
        std::fs::write(&p, "N\n").unwrap();
        assert_eq!(kernel_support_at(&p), KernelSupport::Disabled);
        std::fs::write(&p, "Y\n").unwrap();
        assert_eq!(kernel_support_at(&p), KernelSupport::Enabled);
    }

    #[test]
    fn on_refuses_a_kernel_without_it_and_auto_and_off_fall_back() {
        let f = tempfile::tempfile().unwrap();
        let dev = f.as_fd();
        for support in [KernelSupport::Disabled, KernelSupport::Unsupported] {
            let kernel = Kernel { support, queues: 1 };
            let e = prepare(UringMode::On, dev, 1, kernel).unwrap_err();
            assert!(e.to_string().contains(ENABLE_PARAM), "{e}");
            assert!(check(UringMode::On, support).is_err());
            assert!(check(UringMode::Auto, support).is_ok());
            assert!(prepare(UringMode::Auto, dev, 1, kernel).unwrap().is_none());
        }
        let kernel = Kernel {
            support: KernelSupport::Enabled,
            queues: 1,
        };
        assert!(prepare(UringMode::Off, dev, 1, kernel).unwrap().is_none());
    }
}
