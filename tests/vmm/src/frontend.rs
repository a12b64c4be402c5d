//! The VMM side of vhost-user: negotiation and queue setup through the vhost crate's
//! `Frontend`.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vhost::vhost_user::message::{VhostUserConfigFlags, VhostUserHeaderFlag};
use vhost::vhost_user::{Frontend, VhostUserFrontend, VhostUserProtocolFeatures};
use vhost::{VhostBackend, VringConfigData};

use crate::guest_memory::GuestMemory;
use crate::shmem::Vmm;
use crate::virtqueue::{QUEUE_AREA, Virtqueue};

/// `VIRTIO_RING_F_INDIRECT_DESC`.
pub const F_INDIRECT_DESC: u64 = 1 << 28;
/// `VIRTIO_RING_F_EVENT_IDX`.
pub const F_EVENT_IDX: u64 = 1 << 29;
/// `VHOST_USER_F_PROTOCOL_FEATURES`.
pub const F_PROTOCOL_FEATURES: u64 = 1 << 30;
/// `VIRTIO_F_VERSION_1`.
pub const F_VERSION_1: u64 = 1 << 32;

/// Size of the virtio-fs config space: `tag[36]` + `le32 num_request_queues`.
pub const CONFIG_SIZE: u32 = 40;

/// The protocol features [`Device::connect`] acks when offered.
pub const PROTOCOL_WANTED: VhostUserProtocolFeatures = VhostUserProtocolFeatures::MQ
    .union(VhostUserProtocolFeatures::REPLY_ACK)
    .union(VhostUserProtocolFeatures::CONFIG);

/// How long a vhost-user message may wait for the daemon's answer.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects a bare frontend (no message sent yet). Replies that do not come within
/// [`MESSAGE_TIMEOUT`] fail the call instead of hanging the test.
pub fn connect_raw(socket: &Path, max_queues: u64) -> Frontend {
    // The socket file exists from bind(); connections are refused until listen().
    let sock = connect_retrying(socket, Duration::from_millis(10), |e| {
        e.kind() == std::io::ErrorKind::ConnectionRefused
    });
    frontend_on(sock, max_queues)
}

/// Connects to `socket`, trying again every `interval` for up to [`MESSAGE_TIMEOUT`] while
/// `retryable` says the error may go away.
pub fn connect_retrying(
    socket: &Path,
    interval: Duration,
    retryable: impl Fn(&std::io::Error) -> bool,
) -> UnixStream {
    let deadline = std::time::Instant::now() + MESSAGE_TIMEOUT;
    loop {
        match UnixStream::connect(socket) {
            Ok(s) => return s,
            Err(e) if retryable(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(interval);
            }
            Err(e) => panic!("connect to the vhost-user socket {}: {e}", socket.display()),
        }
    }
}

/// A frontend on a connected socket, with [`MESSAGE_TIMEOUT`] on replies.
pub fn frontend_on(sock: UnixStream, max_queues: u64) -> Frontend {
    sock.set_read_timeout(Some(MESSAGE_TIMEOUT))
        .expect("set the socket read timeout");
    Frontend::from_stream(sock, max_queues)
}

/// What the daemon offered and what we acked.
#[derive(Debug, Clone, Copy)]
pub struct Negotiated {
    pub offered: u64,
    pub acked: u64,
    pub protocol_offered: VhostUserProtocolFeatures,
    pub protocol_acked: VhostUserProtocolFeatures,
}

/// A connected, fully set up virtio-fs device: queue 0 is the high-priority queue,
/// queues 1.. are request queues.
pub struct Device {
    pub fe: Frontend,
    pub mem: Arc<GuestMemory>,
    pub queues: Vec<Virtqueue>,
    pub negotiated: Negotiated,
}

impl Device {
    /// Connects and sets up `1 + request_queues` queues, acking VERSION_1, EVENT_IDX and
    /// INDIRECT_DESC when offered.
    pub fn connect(socket: &Path, request_queues: usize) -> Self {
        Self::connect_with(
            socket,
            request_queues,
            F_VERSION_1 | F_EVENT_IDX | F_INDIRECT_DESC,
        )
    }

    /// Like [`Self::connect`], acking only `wanted` (plus PROTOCOL_FEATURES) of the
    /// offered virtio features.
    pub fn connect_with(socket: &Path, request_queues: usize, wanted: u64) -> Self {
        let mem = Arc::new(GuestMemory::new(QUEUE_AREA as usize * (1 + request_queues)));
        Self::connect_in(socket, request_queues, wanted, mem)
    }

    /// Like [`Self::connect_with`], in guest memory `mem`: queue `i` is laid out at
    /// `i * QUEUE_AREA`, and whatever `mem` holds beyond the queues is the caller's.
    pub fn connect_in(
        socket: &Path,
        request_queues: usize,
        wanted: u64,
        mem: Arc<GuestMemory>,
    ) -> Self {
        Self::connect_full(socket, request_queues, wanted, PROTOCOL_WANTED, mem, None)
    }

    /// Like [`Self::connect_with`], acking `protocol_wanted` of the offered protocol
    /// features (REPLY_ACK makes every message wait for the daemon's ack).
    pub fn connect_acking(
        socket: &Path,
        request_queues: usize,
        wanted: u64,
        protocol_wanted: VhostUserProtocolFeatures,
    ) -> Self {
        let mem = Arc::new(GuestMemory::new(QUEUE_AREA as usize * (1 + request_queues)));
        Self::connect_full(socket, request_queues, wanted, protocol_wanted, mem, None)
    }

    /// Connects as a SHMEM-capable VMM: acks SHMEM, BACKEND_REQ and BACKEND_SEND_FD too,
    /// checks GET_SHMEM_CONFIG announces a window of `vmm`'s size, and hands the daemon
    /// `vmm`'s backend channel (SET_BACKEND_REQ_FD), which then starts serving.
    pub fn connect_vmm(socket: &Path, request_queues: usize, vmm: &mut Vmm) -> Self {
        Self::connect_vmm_acking(socket, request_queues, vmm, PROTOCOL_WANTED)
    }

    /// [`Self::connect_vmm`], acking `protocol_wanted` too.
    pub fn connect_vmm_acking(
        socket: &Path,
        request_queues: usize,
        vmm: &mut Vmm,
        protocol_wanted: VhostUserProtocolFeatures,
    ) -> Self {
        let wanted = F_VERSION_1 | F_EVENT_IDX | F_INDIRECT_DESC;
        let mem = Arc::new(GuestMemory::new(QUEUE_AREA as usize * (1 + request_queues)));
        let dev = Self::connect_full(
            socket,
            request_queues,
            wanted,
            protocol_wanted,
            mem,
            Some(vmm),
        );
        vmm.serve();
        dev
    }

    fn connect_full(
        socket: &Path,
        request_queues: usize,
        wanted: u64,
        protocol_wanted: VhostUserProtocolFeatures,
        mem: Arc<GuestMemory>,
        vmm: Option<&mut Vmm>,
    ) -> Self {
        let nqueues = 1 + request_queues;
        let shmem = VhostUserProtocolFeatures::SHMEM
            | VhostUserProtocolFeatures::BACKEND_REQ
            | VhostUserProtocolFeatures::BACKEND_SEND_FD;
        let mut fe = connect_raw(socket, nqueues as u64);
        fe.set_owner().expect("SET_OWNER");
        let offered = fe.get_features().expect("GET_FEATURES");
        let mut protocol_offered = VhostUserProtocolFeatures::empty();
        let mut protocol_acked = VhostUserProtocolFeatures::empty();
        if offered & F_PROTOCOL_FEATURES != 0 {
            protocol_offered = fe.get_protocol_features().expect("GET_PROTOCOL_FEATURES");
            let mut want = protocol_wanted;
            if vmm.is_some() {
                assert!(
                    protocol_offered.contains(shmem),
                    "the daemon offers no SHMEM: {protocol_offered:?}"
                );
                want |= shmem;
            }
            protocol_acked = protocol_offered & want;
            fe.set_protocol_features(protocol_acked)
                .expect("SET_PROTOCOL_FEATURES");
            if protocol_acked.contains(VhostUserProtocolFeatures::REPLY_ACK) {
                // Every message waits for the daemon's ack: setup is synchronous and any
                // refusal fails here, at the message that caused it.
                fe.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
            }
            if protocol_acked.contains(VhostUserProtocolFeatures::MQ) {
                let max = fe.get_queue_num().expect("GET_QUEUE_NUM");
                assert!(
                    max >= nqueues as u64,
                    "the daemon offers {max} queues, the test wants {nqueues}"
                );
            }
        }
        let acked = offered & (wanted | F_PROTOCOL_FEATURES);
        fe.set_features(acked).expect("SET_FEATURES");
        if let Some(vmm) = vmm {
            let cfg = fe.get_shmem_config().expect("GET_SHMEM_CONFIG");
            let (n, size) = (cfg.nregions, cfg.memory_sizes[0]);
            assert_eq!((n, size), (1, vmm.size()), "GET_SHMEM_CONFIG");
            fe.set_backend_request_fd(&vmm.channel_fd())
                .expect("SET_BACKEND_REQ_FD");
        }

        fe.set_mem_table(&mem.regions()).expect("SET_MEM_TABLE");
        let mut queues = Vec::new();
        for i in 0..nqueues {
            let q = Virtqueue::new(mem.clone(), i);
            setup_vring(&mut fe, &mem, &q, acked & F_PROTOCOL_FEATURES != 0);
            queues.push(q);
        }
        // A round trip: every message above has been handled once this one is answered.
        fe.get_features().expect("GET_FEATURES after setup");
        Self {
            fe,
            mem,
            queues,
            negotiated: Negotiated {
                offered,
                acked,
                protocol_offered,
                protocol_acked,
            },
        }
    }

    /// Reads the whole virtio-fs config space: (tag, num_request_queues).
    pub fn config(&mut self) -> (String, u32) {
        let (_, buf) = self
            .fe
            .get_config(
                0,
                CONFIG_SIZE,
                VhostUserConfigFlags::empty(),
                &[0; CONFIG_SIZE as usize],
            )
            .expect("GET_CONFIG");
        parse_config(&buf)
    }
}

/// Splits a virtio-fs config space into the tag (up to its first NUL) and the number of
/// request queues.
pub fn parse_config(buf: &[u8]) -> (String, u32) {
    assert_eq!(buf.len(), CONFIG_SIZE as usize, "config space size");
    let tag = &buf[..36];
    let end = tag.iter().position(|&b| b == 0).unwrap_or(36);
    let n = u32::from_le_bytes(buf[36..40].try_into().unwrap());
    (String::from_utf8_lossy(&tag[..end]).into_owned(), n)
}

/// Sends SET_VRING_NUM/ADDR/BASE/CALL/KICK for `q`, then SET_VRING_ENABLE when
/// PROTOCOL_FEATURES was acked (`enable`; without it the ring starts on its kick).
pub fn setup_vring(fe: &mut Frontend, mem: &GuestMemory, q: &Virtqueue, enable: bool) {
    let i = q.index();
    fe.set_vring_num(i, q.size()).expect("SET_VRING_NUM");
    fe.set_vring_addr(i, &vring_config(mem, q, false))
        .expect("SET_VRING_ADDR");
    fe.set_vring_base(i, 0).expect("SET_VRING_BASE");
    fe.set_vring_call(i, q.call_fd()).expect("SET_VRING_CALL");
    fe.set_vring_kick(i, q.kick_fd()).expect("SET_VRING_KICK");
    if enable {
        fe.set_vring_enable(i, true).expect("SET_VRING_ENABLE");
    }
}

/// `VHOST_VRING_F_LOG`: the used ring's writes are logged.
pub const VRING_F_LOG: u32 = 1;

/// What SET_VRING_ADDR carries for `q`: this process's addresses of its rings, and with
/// `log` the VHOST_VRING_F_LOG flag and the used ring's guest address as log address.
pub fn vring_config(mem: &GuestMemory, q: &Virtqueue, log: bool) -> VringConfigData {
    let (desc, avail, used) = q.ring_addrs();
    VringConfigData {
        queue_max_size: q.size(),
        queue_size: q.size(),
        flags: if log { VRING_F_LOG } else { 0 },
        desc_table_addr: mem.host_addr(desc),
        used_ring_addr: mem.host_addr(used),
        avail_ring_addr: mem.host_addr(avail),
        log_addr: log.then_some(used),
    }
}

/// Header flags of a raw message: protocol version 1 and NEED_REPLY.
const RAW_FLAGS: u32 = 0x1 | 0x8;

/// Sends one vhost-user message as raw bytes (header: `request`, version 1 with
/// NEED_REPLY, body size; then `body`) with `fds` attached, whatever was negotiated: what
/// the vhost crate's frontend refuses to send, a hostile frontend can.
pub fn send_raw(sock: &UnixStream, request: u32, body: &[u8], fds: &[std::os::fd::RawFd]) {
    use vmm_sys_util::sock_ctrl_msg::ScmSocket;
    let mut msg = Vec::with_capacity(12 + body.len());
    msg.extend_from_slice(&request.to_le_bytes());
    msg.extend_from_slice(&RAW_FLAGS.to_le_bytes());
    msg.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
    msg.extend_from_slice(body);
    sock.send_with_fds(&[&msg[..]], fds)
        .expect("send a raw vhost-user message");
}

/// The daemon's answer to a raw message: `Some((request, flags, body))`, or `None` when
/// it closed the connection instead.
pub fn recv_raw(sock: &UnixStream) -> Option<(u32, u32, Vec<u8>)> {
    use std::io::Read;
    let mut sock = sock;
    let mut hdr = [0u8; 12];
    if sock.read_exact(&mut hdr).is_err() {
        return None;
    }
    let word = |i: usize| u32::from_le_bytes(hdr[i..i + 4].try_into().unwrap());
    let mut body = vec![0; word(8).min(4096) as usize];
    sock.read_exact(&mut body).ok()?;
    Some((word(0), word(4), body))
}
