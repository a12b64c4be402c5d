//! The virtio-fs device as a vhost-user backend: queue 0 is the high-priority queue, queues
//! 1..=N the request queues. Each queue has its own worker thread (so queues are served
//! concurrently); on a kick the worker pops every available chain, hands it to the FUSE
//! server (inline, or through a per-queue thread pool), and completes it on the used ring.

use std::fs::File;
use std::io;
use std::mem::offset_of;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use vhost::vhost_user::Backend;
use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserProtocolFeatures,
    VhostUserShMemConfig,
};
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringState, VringT};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{DescriptorChain, QueueOwnedT, QueueT};
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryLoadGuard, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

use super::VhostUserError;
use super::adaptive_poll::AdaptivePoll;
use super::backend_channel::BackendChannel;
use super::chain::{ChainBuffers, ChainError};
use super::config_space::ConfigSpace;
use super::device_state::DeviceState;
pub use super::dirty_log::DirtyLog;
use super::features;
use super::inflight::InFlight;
use super::pool::ThreadPool;
use super::signal_policy::{GuestPace, PendingSignal};
use crate::fuse::abi;
use crate::fuse::filesystem::FileSystem;
use crate::fuse::server::{self, Server};
use crate::fuse::wait_budget::WaitBudget;

/// Guest memory as the vhost-user daemon maps it, with its dirty-page log.
pub type GuestMemory = GuestMemoryAtomic<GuestMemoryMmap<DirtyLog>>;
/// A vring of this device.
pub type Vring = VringRwLock<GuestMemory>;
type Memory = GuestMemoryLoadGuard<GuestMemoryMmap<DirtyLog>>;
type Chain = DescriptorChain<Memory>;

/// What [`VhostUserFsBackend::pop`] found on a ring.
enum Popped<M: Deref<Target: vm_memory::GuestMemory>> {
    Chain(DescriptorChain<M>),
    Empty,
    Disabled,
    /// The frontend changed guest memory since the worker took the map it serves with.
    MemoryChanged,
}

/// How [`VhostUserFsBackend::drain`] stopped.
enum Drained {
    /// No request left.
    Empty,
    /// The frontend disabled the ring.
    Disabled,
    /// Guest memory changed: the requests left need the new map.
    MemoryChanged,
}

/// What a queue's worker keeps from one kick to the next.
#[derive(Debug)]
struct QueueWorker {
    /// How long it polls an empty ring before sleeping.
    poll: AdaptivePoll,
    /// How fast the guest answers a signal: whether replies share signals.
    pace: GuestPace,
}

/// The queues a backend serves and how.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// Request queues besides the high-priority queue.
    pub num_request_queues: usize,
    /// Largest size of each queue.
    pub queue_size: usize,
    /// Tag for the config space; when set, CONFIG is offered.
    pub tag: Option<String>,
    /// Worker threads per queue; 0 serves requests on the queue's own thread.
    pub thread_pool_size: usize,
    /// Longest a worker polls its empty ring before sleeping (zero: never polls).
    pub max_poll: Duration,
}

/// The virtio-fs vhost-user backend over one FUSE server.
pub struct VhostUserFsBackend<F: FileSystem + 'static> {
    server: Arc<Server<F>>,
    num_queues: usize,
    queue_size: usize,
    config: Option<ConfigSpace>,
    event_idx: AtomicBool,
    mem: RwLock<GuestMemory>,
    pools: Vec<ThreadPool>,
    /// One lock-wait budget per pool: a guest's lock waits never take the last worker of a
    /// queue, so the queue keeps serving its other requests.
    budgets: Vec<Arc<WaitBudget>>,
    inflight: Arc<InFlight>,
    /// Per queue: what its worker keeps from one kick to the next.
    workers: Vec<Mutex<QueueWorker>>,
    /// Bumped by every change of guest memory (SET_MEM_TABLE, ADD_MEM_REG...).
    mem_generation: AtomicU64,
    state: DeviceState,
    channel: Arc<BackendChannel>,
}

impl<F: FileSystem + 'static> VhostUserFsBackend<F> {
    /// A backend serving `server` over the queues `cfg` describes; `mem` is the guest memory
    /// object also given to the vhost-user daemon; `channel` keeps the backend request
    /// channel of the connection (and is the DAX window the filesystem maps through).
    ///
    /// # Errors
    /// Too many queues, a tag too long, or worker threads that cannot be started.
    pub fn new(
        server: Arc<Server<F>>,
        cfg: &DeviceConfig,
        mem: GuestMemory,
        channel: Arc<BackendChannel>,
    ) -> Result<Self, VhostUserError> {
        let num_queues = cfg
            .num_request_queues
            .checked_add(1)
            .filter(|n| *n <= MAX_QUEUES)
            .ok_or(VhostUserError::TooManyQueues(cfg.num_request_queues))?;
        let config = match &cfg.tag {
            Some(tag) => Some(
                ConfigSpace::new(tag, cfg.num_request_queues as u32)
                    .ok_or_else(|| VhostUserError::TagTooLong(tag.clone()))?,
            ),
            None => None,
        };
        let mut pools = Vec::new();
        if cfg.thread_pool_size > 0 {
            for q in 0..num_queues {
                // At most a queue's worth of chains wait for a worker: what a well-behaved
                // guest can have in flight on the queue.
                let pool = ThreadPool::new(
                    cfg.thread_pool_size,
                    &format!("vhostfsd-q{q}"),
                    cfg.queue_size,
                )
                .map_err(VhostUserError::SpawnWorker)?;
                pools.push(pool);
            }
        }
        let budgets = (0..pools.len())
            .map(|_| Arc::new(WaitBudget::new(cfg.thread_pool_size)))
            .collect();
        Ok(Self {
            server,
            num_queues,
            queue_size: cfg.queue_size,
            config,
            event_idx: AtomicBool::new(false),
            mem: RwLock::new(mem),
            pools,
            budgets,
            inflight: Arc::new(InFlight::default()),
            workers: (0..num_queues)
                .map(|_| {
                    Mutex::new(QueueWorker {
                        poll: AdaptivePoll::new(cfg.max_poll),
                        pace: GuestPace::default(),
                    })
                })
                .collect(),
            mem_generation: AtomicU64::new(0),
            state: DeviceState::default(),
            channel,
        })
    }

    /// Ends the filesystem's blocking waits, waits for every request in flight, stops the
    /// thread pools and drops the filesystem state (inodes, handles). Called when the
    /// frontend has gone away.
    pub fn shutdown(&self) {
        self.channel.detach();
        // A request blocked in a lock wait would otherwise keep the wait below (and the
        // disconnect, or SIGTERM, behind it) waiting for ever.
        self.server.fs().abort_waits();
        self.inflight.stop_and_wait();
        for pool in &self.pools {
            pool.shutdown();
        }
        self.server.fs().destroy();
    }

    fn memory(&self) -> GuestMemory {
        self.mem.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes the next available chain of `vring`.
    ///
    /// `mem` is what the chain holds to read its descriptors: a borrowed `&GuestMemoryMmap`
    /// for a request served on this thread (no reference count to touch per request), the
    /// owned load guard for one handed to the thread pool.
    ///
    /// While `pace` waits for the guest's answer to a signal, the available index is read
    /// to see whether it came.
    ///
    /// `generation` is the [`mem_generation`](Self::mem_generation) `mem` was taken at: a
    /// request made available after a memory change (hotplug) may lie in memory `mem` does
    /// not map, so none is popped with it then.
    fn pop<M>(
        &self,
        vring: &Vring,
        mem: M,
        generation: u64,
        pace: Option<&mut GuestPace>,
    ) -> io::Result<Popped<M>>
    where
        M: Clone + Deref<Target: vm_memory::GuestMemory>,
    {
        if self.mem_generation.load(Ordering::Acquire) != generation {
            return Ok(Popped::MemoryChanged);
        }
        let mut state = vring.get_mut();
        if let Some(pace) = pace.filter(|p| p.awaiting())
            && let Some(idx) = avail_idx(&state, &*mem)
        {
            pace.saw_available(Instant::now(), idx);
        }
        // A ring the frontend disabled (SET_VRING_ENABLE 0, e.g. Cloud Hypervisor's pause) is
        // not served, even when this worker was still draining it as the message came: checked
        // under the lock SET_VRING_ENABLE takes, so no request is popped after the reply to it.
        if !state.is_enabled() {
            return Ok(Popped::Disabled);
        }
        let chain = state
            .get_queue_mut()
            .iter(mem)
            .map_err(|e| io::Error::other(format!("cannot read the available ring: {e}")))?
            .next();
        Ok(chain.map_or(Popped::Empty, Popped::Chain))
    }

    /// Serves every available request of queue `queue`, with the EVENT_IDX re-check loop:
    /// notifications stay off while draining, and after turning them back on the ring is
    /// checked once more so a request added meanwhile is not missed.
    ///
    /// Each reply goes on the used ring as soon as it is ready; when the guest is signalled
    /// is [`PendingSignal`]'s rule (fast replies share a signal, no reply waits long), and
    /// every reply is signalled before the worker goes back to waiting for a kick.
    ///
    /// With EVENT_IDX, an empty ring is polled for a while (notifications still off) before
    /// the worker sleeps: [`AdaptivePoll`] decides how long, from how long waits have been.
    fn process_queue(&self, vring: &Vring, queue: usize) -> io::Result<()> {
        let event_idx = self.event_idx.load(Ordering::Acquire);
        // Only this queue's worker takes it.
        let mut worker = self.workers[queue]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let QueueWorker { poll, pace } = &mut *worker;
        poll.end_wait(Instant::now());
        loop {
            // Taken again for each batch, and a batch ends when guest memory changes
            // (hotplug): a worker that polls may stay here for long.
            let generation = self.mem_generation.load(Ordering::Acquire);
            let guard = self.memory().memory();
            let mut pending = PendingSignal::holding(pace.hold());
            let drained = self.drain(
                vring,
                queue,
                (&guard, generation),
                event_idx,
                &mut pending,
                pace,
            );
            if pending.flush() {
                notify(vring, event_idx, &guard, pace);
            }
            match drained? {
                Drained::Disabled => return Ok(()),
                Drained::MemoryChanged => continue,
                Drained::Empty if !event_idx => return Ok(()),
                Drained::Empty => {}
            }
            let polling = poll.begin_wait(Instant::now());
            let polled = !polling.is_zero() && poll_ring(vring, &guard, polling);
            // Not polled: sleep, unless a request came as notifications were turned back on.
            if !polled && !vring.enable_notification().map_err(io::Error::other)? {
                return Ok(());
            }
            poll.end_wait(Instant::now());
        }
    }

    /// Serves requests of `vring` with guest memory `guard`, taken at memory generation
    /// `generation`, until it is empty, disabled or memory changed.
    fn drain(
        &self,
        vring: &Vring,
        queue: usize,
        (guard, generation): (&Memory, u64),
        event_idx: bool,
        pending: &mut PendingSignal,
        pace: &mut GuestPace,
    ) -> io::Result<Drained> {
        if event_idx {
            vring.disable_notification().map_err(io::Error::other)?;
        }
        if let Some((pool, budget)) = self.pools.get(queue).zip(self.budgets.get(queue)) {
            loop {
                match self.pop(vring, guard.clone(), generation, None)? {
                    Popped::Chain(chain) => self.submit(pool, budget, vring, chain, event_idx),
                    Popped::Empty => return Ok(Drained::Empty),
                    Popped::Disabled => return Ok(Drained::Disabled),
                    Popped::MemoryChanged => return Ok(Drained::MemoryChanged),
                }
            }
        }
        let mem: &GuestMemoryMmap<DirtyLog> = guard;
        // One clock read per request: a request's service starts when the one before it
        // was put on the ring (popping the next chain is part of it).
        let mut started = Instant::now();
        loop {
            let chain = match self.pop(vring, mem, generation, Some(&mut *pace))? {
                Popped::Chain(chain) => chain,
                Popped::Empty => return Ok(Drained::Empty),
                Popped::Disabled => return Ok(Drained::Disabled),
                Popped::MemoryChanged => return Ok(Drained::MemoryChanged),
            };
            let head = chain.head_index();
            // Replies ready must not wait for an fsync or the like.
            let mut before = |opcode| {
                if server::may_block(opcode) && pending.flush() {
                    notify(vring, event_idx, mem, pace);
                }
            };
            // No pool: locks are not served (ENOSYS), nothing ever waits.
            let len = serve_descriptors(&self.server, mem, chain, head, None, &mut before);
            if let Err(e) = vring.add_used(head, len) {
                crate::warn_limited!("queue {queue}: cannot complete request {head}: {e}");
            }
            let now = Instant::now();
            started = if pending.replied(started, now) {
                notify(vring, event_idx, mem, pace);
                // The signal is not the next request's service time.
                Instant::now()
            } else {
                now
            };
        }
    }

    fn submit(
        &self,
        pool: &ThreadPool,
        budget: &Arc<WaitBudget>,
        vring: &Vring,
        chain: Chain,
        event_idx: bool,
    ) {
        let Some(ticket) = self.inflight.enter() else {
            return;
        };
        let (server, budget) = (self.server.clone(), budget.clone());
        let vring = vring.clone();
        let job = Box::new(move || {
            let head = chain.head_index();
            let len = serve_chain(&server, chain, Some(&budget), &mut |_| {});
            complete(&vring, head, len, event_idx);
            drop(ticket);
        });
        if pool.submit(job).is_err() {
            log::debug!("request dropped: the device is shutting down");
        }
    }
}

/// Most queues: one worker thread each, and the thread mask is a u64.
pub const MAX_QUEUES: usize = 64;
/// Most request queues (`--num-request-queues`): every queue but the high-priority one.
pub const MAX_REQUEST_QUEUES: usize = MAX_QUEUES - 1;

/// Runs one request; returns the reply length to put in the used ring (0 for a malformed
/// chain or a request that got no reply).
fn serve_chain<F: FileSystem>(
    server: &Server<F>,
    chain: Chain,
    budget: Option<&WaitBudget>,
    before: &mut dyn FnMut(u32),
) -> u32 {
    let head = chain.head_index();
    serve_descriptors(server, chain.memory(), chain.clone(), head, budget, before)
}

/// Runs the request in `descriptors` (chain `head`); returns the reply length. The chain's
/// buffers are kept on the stack: nothing is allocated for them.
fn serve_descriptors<F: FileSystem, M: vm_memory::GuestMemory>(
    server: &Server<F>,
    mem: &M,
    descriptors: impl IntoIterator<Item = Descriptor>,
    head: u16,
    budget: Option<&WaitBudget>,
    before: &mut dyn FnMut(u32),
) -> u32 {
    let mut bufs = ChainBuffers::new();
    let filled = bufs.fill(mem, descriptors);
    if let Some(opcode) = bufs.request_u32(offset_of!(abi::InHeader, opcode)) {
        before(opcode);
    }
    let (reader, writer) = bufs.split();
    let served = match filled {
        Ok(()) => server.handle_message_in(reader, writer, budget),
        Err(e @ ChainError::TooManyPieces) => {
            crate::warn_limited!("request {head} refused with E2BIG: {e}");
            server.refuse_message(reader, writer, libc::E2BIG)
        }
        Err(e) => {
            crate::warn_limited!("malformed request {head} completed with no reply: {e}");
            return 0;
        }
    };
    match served {
        Ok(n) => u32::try_from(n).unwrap_or(u32::MAX),
        Err(e) => {
            log::debug!("request {head} got no reply: {e}");
            0
        }
    }
}

/// Polls `vring`'s available ring for up to `time`: true as soon as it holds a request (or
/// the ring needs the worker's attention: disabled, unreadable), false when time is up.
fn poll_ring(vring: &Vring, mem: &GuestMemoryMmap<DirtyLog>, time: Duration) -> bool {
    let deadline = Instant::now() + time;
    loop {
        {
            let state = vring.get_ref();
            let waiting = !state.is_enabled()
                || avail_idx(&state, mem).is_none_or(|idx| idx != state.get_queue().next_avail());
            if waiting {
                return true;
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::hint::spin_loop();
    }
}

/// Puts request `head` on the used ring with `len` reply bytes and signals the guest if it
/// asked to be (always without EVENT_IDX). Both under one lock of the vring, so concurrent
/// completions on this queue (thread pool) cannot miss a notification.
fn complete(vring: &Vring, head: u16, len: u32, event_idx: bool) {
    let mut state = vring.get_mut();
    if let Err(e) = state.add_used(head, len) {
        crate::warn_limited!("cannot complete request {head}: {e}");
    }
    signal_if_asked(&mut state, event_idx);
}

/// Signals the guest about the replies on `vring`'s used ring if it asked to be, and lets
/// `pace` time the guest's answer from there.
fn notify(vring: &Vring, event_idx: bool, mem: &GuestMemoryMmap<DirtyLog>, pace: &mut GuestPace) {
    let mut state = vring.get_mut();
    if signal_if_asked(&mut state, event_idx)
        && let Some(idx) = avail_idx(&state, mem)
    {
        pace.signalled(Instant::now(), idx);
    }
}

/// The guest's available index of the ring `state` describes, as it is in memory now;
/// `None` when it cannot be read.
fn avail_idx<M>(state: &VringState<GuestMemory>, mem: &M) -> Option<u16>
where
    M: vm_memory::GuestMemory + ?Sized,
{
    let idx = state.get_queue().avail_idx(mem, Ordering::Acquire).ok()?;
    Some(idx.0)
}

/// Signals the guest if it asked to be (always without EVENT_IDX); true when signalled.
fn signal_if_asked(state: &mut VringState<GuestMemory>, event_idx: bool) -> bool {
    if !event_idx || state.needs_notification().unwrap_or(true) {
        match state.signal_used_queue() {
            Ok(()) => return true,
            Err(e) => log::warn!("cannot notify the guest: {e}"),
        }
    }
    false
}

impl<F: FileSystem + 'static> VhostUserBackend for VhostUserFsBackend<F> {
    type Bitmap = DirtyLog;
    type Vring = Vring;

    fn num_queues(&self) -> usize {
        self.num_queues
    }

    fn max_queue_size(&self) -> usize {
        self.queue_size
    }

    fn features(&self) -> u64 {
        features::virtio_features()
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        features::protocol_features(self.config.is_some(), self.channel.has_window())
    }

    fn reset_device(&self) {
        self.channel.device_reset();
        self.server.fs().abort_waits();
        self.inflight.stop_and_wait();
        self.server.fs().destroy();
        self.inflight.resume();
    }

    fn set_event_idx(&self, enabled: bool) {
        self.event_idx.store(enabled, Ordering::Release);
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        self.config
            .as_ref()
            .map(|c| c.read(offset, size))
            .unwrap_or_default()
    }

    fn set_device_state_fd(
        &self,
        direction: VhostTransferStateDirection,
        phase: VhostTransferStatePhase,
        file: File,
    ) -> io::Result<Option<File>> {
        self.state
            .start(&self.server, direction, phase, file)
            .map(|()| None)
            .map_err(|e| {
                log::error!("migration: {}", crate::error_chain::one_line(&e));
                io::Error::other(e)
            })
    }

    fn check_device_state(&self) -> io::Result<()> {
        self.state.check(&self.server).map_err(|e| {
            log::error!("migration: {}", crate::error_chain::one_line(&e));
            io::Error::other(e)
        })
    }

    fn set_backend_req_fd(&self, backend: Backend) {
        self.channel.attach(backend);
    }

    fn get_shmem_config(&self) -> io::Result<VhostUserShMemConfig> {
        self.channel.shmem_config().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "no shared-memory region: the daemon runs without --dax-window",
            )
        })
    }

    fn stop_vring(&self, _queue_index: u32) -> io::Result<()> {
        self.channel.device_stopped();
        Ok(())
    }

    fn update_memory(&self, mem: GuestMemory) -> io::Result<()> {
        *self.mem.write().unwrap_or_else(|e| e.into_inner()) = mem;
        self.mem_generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    fn queues_per_thread(&self) -> Vec<u64> {
        (0..self.num_queues).map(|q| 1u64 << q).collect()
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC)
            .inspect_err(|e| log::error!("cannot create a worker exit event: {e}"))
            .ok()
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[Vring],
        thread_id: usize,
    ) -> io::Result<()> {
        if evset != EventSet::IN {
            log::warn!("queue {thread_id}: unexpected event set {evset:?}, ignored");
            return Ok(());
        }
        // Each worker thread owns exactly one queue: `thread_id` is the queue index.
        let Some(vring) = vrings.get(usize::from(device_event)) else {
            log::warn!("queue {thread_id}: event for unknown vring {device_event}, ignored");
            return Ok(());
        };
        let Some(_ticket) = self.inflight.enter() else {
            return Ok(());
        };
        self.channel.device_running();
        if let Err(e) = self.process_queue(vring, thread_id) {
            // A broken ring is the guest's problem; keep the worker alive for the next kick.
            crate::warn_limited!("queue {thread_id}: {e}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use vm_memory::GuestAddress;

    use super::*;
    use crate::passthrough::{self, PassthroughFs};

    fn backend(tag: Option<&str>, queues: usize, pool: usize) -> VhostUserFsBackend<PassthroughFs> {
        polling_backend(tag, queues, pool, Duration::ZERO)
    }

    /// [`backend`] whose workers poll for up to `max_poll`.
    fn polling_backend(
        tag: Option<&str>,
        queues: usize,
        pool: usize,
        max_poll: Duration,
    ) -> VhostUserFsBackend<PassthroughFs> {
        let dir = std::env::temp_dir();
        let cfg = passthrough::Config {
            root_dir: dir,
            ..passthrough::Config::default()
        };
        let proc_self_fd = std::fs::File::open("/proc/self/fd").unwrap();
        let fs = PassthroughFs::new(cfg, proc_self_fd).unwrap();
        let server = Arc::new(Server::new(Arc::new(fs)));
        let mem = GuestMemoryAtomic::new(
            GuestMemoryMmap::<DirtyLog>::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap(),
        );
        let dev = DeviceConfig {
            num_request_queues: queues,
            queue_size: 256,
            tag: tag.map(str::to_string),
            thread_pool_size: pool,
            max_poll,
        };
        VhostUserFsBackend::new(server, &dev, mem, Arc::new(BackendChannel::new(0))).unwrap()
    }

    /// A ready, enabled 16-entry vring over `mock`'s rings, EVENT_IDX as given (for `b` too).
    fn ready_vring(
        b: &VhostUserFsBackend<PassthroughFs>,
        mem: &GuestMemory,
        mock: &virtio_queue::mock::MockSplitQueue<'_, GuestMemoryMmap<DirtyLog>>,
        event_idx: bool,
    ) -> Vring {
        let vring = Vring::new(mem.clone(), 16).unwrap();
        vring.set_queue_size(16);
        vring
            .set_queue_info(
                mock.desc_table_addr().0,
                mock.avail_addr().0,
                mock.used_addr().0,
            )
            .unwrap();
        vring.set_queue_event_idx(event_idx);
        vring.set_queue_ready(true);
        vring.set_enabled(true);
        b.set_event_idx(event_idx);
        vring
    }

    /// Puts a well-formed chain (head 0) and a writable-then-readable one (head 2) on a
    /// queue, kicks the backend, and checks both are completed and the worker survives.
    fn serve_two_chains(pool: usize, event_idx: bool) {
        use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
        use virtio_queue::desc::RawDescriptor;
        use virtio_queue::desc::split::Descriptor;
        use virtio_queue::mock::MockSplitQueue;

        let b = backend(None, 1, pool);
        let mem = b.memory();
        let guard = mem.memory();
        let mock = MockSplitQueue::new(&*guard, 16);
        let (next, write) = (VRING_DESC_F_NEXT as u16, VRING_DESC_F_WRITE as u16);
        let descs = [
            Descriptor::new(0x1000, 40, next, 1),
            Descriptor::new(0x2000, 100, write, 0),
            Descriptor::new(0x3000, 16, write | next, 3),
            Descriptor::new(0x4000, 16, 0, 0),
        ]
        .map(RawDescriptor::from);
        mock.add_desc_chains(&descs, 0).unwrap();

        let vring = ready_vring(&b, &mem, &mock, event_idx);

        b.handle_event(0, EventSet::IN, std::slice::from_ref(&vring), 1)
            .unwrap();
        b.shutdown(); // waits for pool jobs
        assert_eq!(mock.used().idx().load(), 2);
        let mut heads: Vec<u32> = (0..2)
            .map(|i| mock.used().ring().ref_at(i).unwrap().load().id())
            .collect();
        heads.sort();
        assert_eq!(heads, vec![0, 2]);
    }

    #[test]
    fn polling_sees_a_request_made_available_meanwhile_and_gives_up_in_time() {
        use virtio_queue::mock::MockSplitQueue;
        use vm_memory::{Bytes, GuestAddress};

        let b = backend(None, 1, 0);
        let mem = b.memory();
        let guard = mem.memory();
        let mock = MockSplitQueue::new(&*guard, 16);
        let vring = ready_vring(&b, &mem, &mock, true);

        let started = Instant::now();
        assert!(
            !poll_ring(&vring, &guard, Duration::from_millis(20)),
            "nothing came"
        );
        assert!(started.elapsed() >= Duration::from_millis(20));

        // The guest makes a request available 10 ms into a long poll, and kicks not.
        let avail_idx = GuestAddress(mock.avail_addr().0 + 2);
        let guest = mem.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            guest.memory().write_obj(1u16, avail_idx).unwrap();
        });
        let started = Instant::now();
        assert!(poll_ring(&vring, &guard, Duration::from_secs(10)));
        assert!(started.elapsed() < Duration::from_secs(5));
        writer.join().unwrap();

        // A hostile index (far beyond the queue size) ends the poll too; serving the
        // ring then refuses it, completes nothing, and the worker lives on.
        guard.write_obj(0x8000u16, avail_idx).unwrap();
        assert!(poll_ring(&vring, &guard, Duration::from_secs(10)));
        b.handle_event(0, EventSet::IN, std::slice::from_ref(&vring), 1)
            .unwrap();
        assert_eq!(mock.used().idx().load(), 0);

        // A ring the frontend disabled ends the poll at once: the worker must see it.
        guard.write_obj(0u16, avail_idx).unwrap();
        vring.set_enabled(false);
        let started = Instant::now();
        assert!(poll_ring(&vring, &guard, Duration::from_secs(10)));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_polling_worker_serves_a_request_in_memory_hotplugged_while_it_polled() {
        use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
        use virtio_queue::desc::RawDescriptor;
        use virtio_queue::mock::MockSplitQueue;
        use vm_memory::{Bytes, GuestAddress, GuestMemoryRegion, GuestRegionMmap, MmapRegion};

        let b = Arc::new(polling_backend(None, 1, 0, Duration::from_secs(1)));
        let mem = b.memory();
        let first = mem.memory();
        let mock = MockSplitQueue::new(&*first, 16);
        let vring = ready_vring(&b, &mem, &mock, true);
        // Kicks with nothing to serve, back to back: each wait is just longer than the poll
        // before it, so the poll doubles. Stop once it is over 400 ms: the next kick's wait
        // (that poll, 524 ms) is still under the 1 s max, so the worker then polls 1 s.
        let kick = |b: &VhostUserFsBackend<PassthroughFs>, vring: &Vring| {
            b.handle_event(0, EventSet::IN, std::slice::from_ref(vring), 1)
                .unwrap();
        };
        let polling =
            |b: &VhostUserFsBackend<PassthroughFs>| b.workers[1].lock().unwrap().poll.polling();
        while polling(&b) < Duration::from_millis(400) {
            kick(&b, &vring);
        }

        let worker = {
            let (b, vring) = (b.clone(), vring.clone());
            std::thread::spawn(move || kick(&b, &vring))
        };
        std::thread::sleep(Duration::from_millis(20));
        // Memory hotplug (the frontend's ADD_MEM_REG) while the worker polls, then a
        // GETATTR whose buffers lie in the new region, made available without a kick.
        let region = MmapRegion::<DirtyLog>::new(0x10000).unwrap();
        let region = GuestRegionMmap::new(region, GuestAddress(0x10000)).unwrap();
        assert_eq!(region.len(), 0x10000);
        let grown = first.insert_region(Arc::new(region)).unwrap();
        mem.lock().unwrap().replace(grown);
        b.update_memory(mem.clone()).unwrap(); // as vhost-user-backend's handler does
        let request = crate::fuse::testing::RequestBuilder::new(abi::opcode::GETATTR, 1).build(
            &[vm_memory::ByteValued::as_slice(&abi::GetattrIn::default())],
            &[],
        );
        mem.memory()
            .write_slice(&request, GuestAddress(0x10000))
            .unwrap();
        let (next, write) = (VRING_DESC_F_NEXT as u16, VRING_DESC_F_WRITE as u16);
        let descs = [
            Descriptor::new(0x10000, request.len() as u32, next, 1),
            Descriptor::new(0x11000, 256, write, 0),
        ]
        .map(RawDescriptor::from);
        mock.add_desc_chains(&descs, 0).unwrap();
        worker.join().unwrap();

        assert_eq!(
            mock.used().idx().load(),
            1,
            "served by the poll, without a kick"
        );
        let used = mock.used().ring().ref_at(0).unwrap().load();
        assert!(
            used.len() > 0,
            "no reply: the worker read the chain with the old memory"
        );
    }

    #[test]
    fn serves_chains_inline_and_survives_a_malformed_one() {
        serve_two_chains(0, false);
        serve_two_chains(0, true);
    }

    #[test]
    fn serves_chains_through_the_pool() {
        serve_two_chains(2, true);
    }

    #[test]
    fn a_chain_of_more_buffers_than_the_fixed_arrays_gets_e2big() {
        use vm_memory::{Bytes, GuestMemoryMmap};

        use super::super::chain::MAX_SIDE_PIECES;
        use crate::fuse::abi::{self, opcode};
        use crate::fuse::testing::RequestBuilder;

        let b = backend(None, 1, 0);
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let req = RequestBuilder::new(opcode::GETATTR, 1)
            .unique(99)
            .build(&[&[0u8; 16]], &[]);
        mem.write_slice(&req, GuestAddress(0x1000)).unwrap();
        // The request one byte per descriptor, padded with one-byte descriptors past the
        // fixed array; the reply space in one writable descriptor.
        let write = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
        let mut descs: Vec<_> = (0..MAX_SIDE_PIECES as u64 + 50)
            .map(|i| Descriptor::new(0x1000 + i, 1, 0, 0))
            .collect();
        descs.push(Descriptor::new(0x8000, 256, write, 0));
        let len = serve_descriptors(&b.server, &mem, descs, 7, None, &mut |_| {});
        assert_eq!(len, 16, "an error reply");
        let out: abi::OutHeader = mem.read_obj(GuestAddress(0x8000)).unwrap();
        assert_eq!((out.len, out.error, out.unique), (16, -libc::E2BIG, 99));
        // The same request in one descriptor is served (not initialized yet: EIO).
        let descs = vec![
            Descriptor::new(0x1000, req.len() as u32, 0, 0),
            Descriptor::new(0x8000, 256, write, 0),
        ];
        assert_eq!(
            serve_descriptors(&b.server, &mem, descs, 7, None, &mut |_| {}),
            16
        );
        let out: abi::OutHeader = mem.read_obj(GuestAddress(0x8000)).unwrap();
        assert_eq!(out.error, -libc::EIO);
    }

    #[test]
    fn the_opcode_is_seen_before_the_request_is_served() {
        use vm_memory::{Bytes, GuestMemoryMmap};

        use crate::fuse::abi::opcode;
        use crate::fuse::testing::RequestBuilder;

        let b = backend(None, 1, 0);
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let req = RequestBuilder::new(opcode::FSYNC, 1).build(&[&[0u8; 16]], &[]);
        mem.write_slice(&req, GuestAddress(0x1000)).unwrap();
        let write = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
        let serve = |descs: Vec<Descriptor>| {
            let mut seen = Vec::new();
            serve_descriptors(&b.server, &mem, descs, 7, None, &mut |op| seen.push(op));
            seen
        };
        // The header split across descriptors, the opcode across the split.
        let split = vec![
            Descriptor::new(0x1000, 6, 0, 0),
            Descriptor::new(0x1006, req.len() as u32 - 6, 0, 0),
            Descriptor::new(0x8000, 256, write, 0),
        ];
        assert_eq!(serve(split), [opcode::FSYNC]);
        // Too short to hold an opcode, write-only, or outside guest memory: not seen (the
        // server refuses or drops such a request without serving it).
        for descs in [
            vec![Descriptor::new(0x1000, 7, 0, 0)],
            vec![Descriptor::new(0x1000, 56, write, 0)],
            vec![Descriptor::new(u64::MAX - 2, 56, 0, 0)],
        ] {
            assert!(serve(descs).is_empty());
        }
    }

    #[test]
    fn one_thread_per_queue() {
        let b = backend(None, 3, 0);
        assert_eq!(b.num_queues(), 4);
        assert_eq!(b.queues_per_thread(), vec![1, 2, 4, 8]);
        assert_eq!(b.max_queue_size(), 256);
    }

    #[test]
    fn config_space_only_with_tag() {
        let b = backend(None, 1, 0);
        assert!(b.get_config(0, 40).is_empty());
        assert!(
            !b.protocol_features()
                .contains(VhostUserProtocolFeatures::CONFIG)
        );
        let b = backend(Some("share"), 2, 2);
        let c = b.get_config(0, 40);
        assert_eq!(&c[..5], b"share");
        assert_eq!(&c[36..], &[2, 0, 0, 0]);
        assert!(
            b.protocol_features()
                .contains(VhostUserProtocolFeatures::CONFIG)
        );
        b.shutdown();
    }
}
