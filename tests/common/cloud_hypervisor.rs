//! Cloud Hypervisor's vhost-user-fs frontend, replayed message for message with the
//! harness's frontend pieces ([`super::frontend`]).
//!
//! Followed: cloud-hypervisor/cloud-hypervisor `main` at ae44c297 (2026-08-22, after
//! v53.0), `virtio-devices/src/vhost_user/`:
//! - `fs.rs`, `Fs::new`: the protocol features offered (MQ, CONFIGURE_MEM_SLOTS, REPLY_ACK,
//!   INFLIGHT_SHMFD, LOG_SHMFD, DEVICE_STATE; never BACKEND_REQ, so no DAX), GET_QUEUE_NUM
//!   checked against `1 + num_queues`; the device then offers the guest what was acked,
//!   and keeps PROTOCOL_FEATURES set on the guest's behalf.
//! - `mod.rs`: `DEFAULT_VIRTIO_FEATURES`; `VhostUserCommon::activate` (inflight tracking
//!   only when INFLIGHT_SHMFD was acked); `VhostUserEpollHandler::reconnect` (on a hang-up).
//! - `vu_common_ctrl.rs`: `connect_vhost_user` (connect, retried every 100 ms on
//!   ENOENT/ECONNREFUSED; SET_OWNER; GET_FEATURES), `negotiate_features_vhost_user`
//!   (GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, then NEED_REPLY on every message when
//!   REPLY_ACK was acked), `setup_vhost_user` (SET_FEATURES, SET_MEM_TABLE, SET_VRING_NUM
//!   for every queue, GET/SET_INFLIGHT_FD, then per queue SET_VRING_ADDR, SET_VRING_BASE
//!   (the guest's avail index, or saved bases), SET_VRING_CALL, SET_VRING_KICK, then
//!   SET_VRING_ENABLE for every queue), `reinitialize_vhost_user` (reconnect: SET_OWNER,
//!   GET_FEATURES, SET_PROTOCOL_FEATURES without GET_PROTOCOL_FEATURES, then the setup),
//!   `start_dirty_log`/`dirty_log` (a log sized to the byte, swapped for a fresh one at each
//!   pass), `save_backend_state` (GET_VRING_BASE per queue, then SAVE) and
//!   `restore_backend_state` (LOAD right after SET_PROTOCOL_FEATURES, before SET_FEATURES
//!   and the memory table), `pause_vhost_user`/`resume_vhost_user` (SET_VRING_ENABLE off,
//!   then on) and `add_memory_region` (ADD_MEM_REG with CONFIGURE_MEM_SLOTS).
//!
//! v53.0 sends the same messages in the same order; `main` only adds, on reconnect when
//! VIRTIO_F_IN_ORDER was negotiated and inflight tracking was not, a replay from the used
//! index (vhostfsd offers neither, so the ring restarts at the avail index in both).

use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use vhost::VhostBackend;
use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserHeaderFlag, VhostUserInflight,
};
use vhost::vhost_user::{Frontend, VhostUserFrontend, VhostUserProtocolFeatures};

use super::dirty_log::{DirtyLog, F_LOG_ALL, LOG_PAGE};
use super::frontend::{
    Device, F_EVENT_IDX, F_INDIRECT_DESC, F_PROTOCOL_FEATURES, F_VERSION_1, Negotiated,
    connect_retrying, frontend_on, vring_config,
};
use super::guest_memory::GuestMemory;
use super::migration::pipe;
use super::virtqueue::{QUEUE_AREA, Virtqueue};

/// `VIRTIO_F_IN_ORDER`.
pub const F_IN_ORDER: u64 = 1 << 35;
/// `VIRTIO_F_ORDER_PLATFORM`.
pub const F_ORDER_PLATFORM: u64 = 1 << 36;
/// `VIRTIO_F_NOTIFICATION_DATA`.
pub const F_NOTIFICATION_DATA: u64 = 1 << 38;

/// `DEFAULT_VIRTIO_FEATURES`: what Cloud Hypervisor can use of a vhost-user device.
pub const VIRTIO_FEATURES: u64 = F_INDIRECT_DESC
    | F_EVENT_IDX
    | F_VERSION_1
    | F_IN_ORDER
    | F_ORDER_PLATFORM
    | F_NOTIFICATION_DATA
    | F_PROTOCOL_FEATURES
    | F_LOG_ALL;

/// The protocol features `Fs::new` offers.
pub const PROTOCOL_FEATURES: VhostUserProtocolFeatures = VhostUserProtocolFeatures::MQ
    .union(VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS)
    .union(VhostUserProtocolFeatures::REPLY_ACK)
    .union(VhostUserProtocolFeatures::INFLIGHT_SHMFD)
    .union(VhostUserProtocolFeatures::LOG_SHMFD)
    .union(VhostUserProtocolFeatures::DEVICE_STATE);

/// What a Linux guest's virtio-fs driver acks of the features the device offers it.
pub const GUEST_ACKS: u64 = F_VERSION_1 | F_EVENT_IDX | F_INDIRECT_DESC;

/// Cloud Hypervisor's `--fs` default `queue_size`.
pub const QUEUE_SIZE: u16 = 1024;

/// `connect_vhost_user`: connects (retrying while the daemon is not there yet, as Cloud
/// Hypervisor does every 100 ms), then SET_OWNER and GET_FEATURES. Returns the frontend and
/// the features the daemon offered.
pub fn connect(socket: &std::path::Path, num_queues: usize) -> (Frontend, u64) {
    let (fe, features, _) = connect_with_raw(socket, num_queues);
    (fe, features)
}

/// [`connect`], also returning a second handle on the socket to send raw messages the
/// vhost crate's frontend would refuse to send.
pub fn connect_with_raw(
    socket: &std::path::Path,
    num_queues: usize,
) -> (Frontend, u64, UnixStream) {
    let sock = connect_retrying(socket, Duration::from_millis(100), |e| {
        matches!(
            e.kind(),
            std::io::ErrorKind::NotFound
                | std::io::ErrorKind::Interrupted
                | std::io::ErrorKind::ConnectionRefused
        )
    });
    let raw = sock.try_clone().expect("dup the vhost-user socket");
    let fe = frontend_on(sock, num_queues as u64);
    fe.set_owner().expect("SET_OWNER");
    let backend_features = fe.get_features().expect("GET_FEATURES");
    (fe, backend_features, raw)
}

/// `Fs::new` with `negotiate_features_vhost_user`: GET_PROTOCOL_FEATURES,
/// SET_PROTOCOL_FEATURES (what both offer), NEED_REPLY from then on, GET_QUEUE_NUM.
/// `acked` is what the device will send with SET_FEATURES once the guest acked
/// [`GUEST_ACKS`].
pub fn negotiate(fe: &mut Frontend, backend_features: u64, num_queues: usize) -> Negotiated {
    let usable = VIRTIO_FEATURES & backend_features;
    assert_ne!(
        usable & F_PROTOCOL_FEATURES,
        0,
        "the daemon offers no PROTOCOL_FEATURES: Cloud Hypervisor would negotiate nothing"
    );
    let protocol_offered = fe.get_protocol_features().expect("GET_PROTOCOL_FEATURES");
    let protocol_acked = PROTOCOL_FEATURES & protocol_offered;
    fe.set_protocol_features(protocol_acked)
        .expect("SET_PROTOCOL_FEATURES");
    need_reply(fe, protocol_acked);
    let backend_num_queues = if protocol_acked.contains(VhostUserProtocolFeatures::MQ) {
        fe.get_queue_num().expect("GET_QUEUE_NUM") as usize
    } else {
        2
    };
    assert!(
        num_queues <= backend_num_queues,
        "Cloud Hypervisor refuses the device: it wants {num_queues} queues, the daemon \
         offers {backend_num_queues}"
    );
    Negotiated {
        offered: backend_features,
        // The guest never acks PROTOCOL_FEATURES; the device keeps it set for it.
        acked: (GUEST_ACKS | F_PROTOCOL_FEATURES) & usable,
        protocol_offered,
        protocol_acked,
    }
}

/// With REPLY_ACK acked, every message asks for an ack (`set_hdr_flags(NEED_REPLY)`).
fn need_reply(fe: &mut Frontend, protocol_acked: VhostUserProtocolFeatures) {
    if protocol_acked.contains(VhostUserProtocolFeatures::REPLY_ACK) {
        fe.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
    }
}

/// `setup_vhost_user` (device activation): SET_FEATURES, SET_MEM_TABLE, SET_VRING_NUM for
/// every queue, GET_INFLIGHT_FD/SET_INFLIGHT_FD when INFLIGHT_SHMFD was acked, then per
/// queue SET_VRING_ADDR, SET_VRING_BASE (`bases`, or the avail index the guest left in
/// memory), SET_VRING_CALL, SET_VRING_KICK, and last SET_VRING_ENABLE for every queue.
pub fn setup(
    fe: &mut Frontend,
    mem: &GuestMemory,
    queues: &[&Virtqueue],
    negotiated: &Negotiated,
    bases: Option<&[u16]>,
) {
    fe.set_features(negotiated.acked & negotiated.offered)
        .expect("SET_FEATURES");
    fe.set_mem_table(&mem.regions()).expect("SET_MEM_TABLE");
    for q in queues {
        fe.set_vring_num(q.index(), q.size())
            .expect("SET_VRING_NUM");
    }
    if negotiated
        .protocol_acked
        .contains(VhostUserProtocolFeatures::INFLIGHT_SHMFD)
    {
        let want = VhostUserInflight {
            num_queues: queues.len() as u16,
            queue_size: queues[0].size(),
            ..Default::default()
        };
        let (info, file) = fe.get_inflight_fd(&want).expect("GET_INFLIGHT_FD");
        use std::os::fd::AsRawFd;
        fe.set_inflight_fd(&info, file.as_raw_fd())
            .expect("SET_INFLIGHT_FD");
    }
    for (n, q) in queues.iter().enumerate() {
        let i = q.index();
        fe.set_vring_addr(i, &vring_config(mem, q, false))
            .expect("SET_VRING_ADDR");
        let base = bases.map_or_else(|| q.avail_idx(), |b| b[n]);
        fe.set_vring_base(i, base).expect("SET_VRING_BASE");
        fe.set_vring_call(i, q.call_fd()).expect("SET_VRING_CALL");
        fe.set_vring_kick(i, q.kick_fd()).expect("SET_VRING_KICK");
    }
    for q in queues {
        fe.set_vring_enable(q.index(), true)
            .expect("SET_VRING_ENABLE");
    }
}

/// Cloud Hypervisor's `--fs num_queues=request_queues,queue_size=queue_size`: device
/// creation (connect, negotiation) then activation once the guest acked [`GUEST_ACKS`].
pub fn connect_device(socket: &std::path::Path, request_queues: usize, queue_size: u16) -> Device {
    let nqueues = 1 + request_queues;
    let (mut fe, backend_features) = connect(socket, nqueues);
    let negotiated = negotiate(&mut fe, backend_features, nqueues);
    let mem = Arc::new(GuestMemory::new(QUEUE_AREA as usize * nqueues));
    let queues: Vec<_> = (0..nqueues)
        .map(|i| Virtqueue::with_size(mem.clone(), i, queue_size))
        .collect();
    setup(
        &mut fe,
        &mem,
        &queues.iter().collect::<Vec<_>>(),
        &negotiated,
        None,
    );
    Device {
        fe,
        mem,
        queues,
        negotiated,
    }
}

/// `reconnect` after the daemon hung up: a new connection (retried until the daemon is
/// back), SET_PROTOCOL_FEATURES with what was acked before (no GET_PROTOCOL_FEATURES),
/// then the whole setup on the same guest memory and rings, each ring's base being the
/// guest's avail index.
pub fn reconnect(
    socket: &std::path::Path,
    mem: &GuestMemory,
    queues: &[&Virtqueue],
    negotiated: &Negotiated,
) -> Frontend {
    let (mut fe, _) = connect(socket, queues.len());
    fe.set_protocol_features(negotiated.protocol_acked)
        .expect("SET_PROTOCOL_FEATURES");
    need_reply(&mut fe, negotiated.protocol_acked);
    setup(&mut fe, mem, queues, negotiated, None);
    fe
}

/// The log `start_dirty_log` creates: one bit per 4 KiB page up to the last guest address,
/// sized to the byte (`last_ram_addr / (4096 * 8) + 1`), not to a page.
pub fn dirty_log_for(mem: &GuestMemory) -> DirtyLog {
    DirtyLog::with_len((mem.size() - 1) / (LOG_PAGE * 8) + 1)
}

/// `start_dirty_log`: SET_LOG_BASE with `log`, SET_FEATURES with LOG_ALL added, then
/// SET_VRING_ADDR with VHOST_VRING_F_LOG (and the used ring's guest address) for every
/// queue, while the rings run.
pub fn start_dirty_log(dev: &Device, queues: &[&Virtqueue], log: &DirtyLog) {
    swap_dirty_log(dev, log);
    dev.fe
        .set_features((dev.negotiated.acked & dev.negotiated.offered) | F_LOG_ALL)
        .expect("SET_FEATURES with LOG_ALL");
    for q in queues {
        dev.fe
            .set_vring_addr(q.index(), &vring_config(q.mem(), q, true))
            .expect("SET_VRING_ADDR with VHOST_VRING_F_LOG");
    }
}

/// `dirty_log` (each migration pass): SET_LOG_BASE with a fresh `log`; the caller reads the
/// previous one, which the daemon no longer writes.
pub fn swap_dirty_log(dev: &Device, log: &DirtyLog) {
    dev.fe
        .set_log_base(0, Some(log.region()))
        .expect("SET_LOG_BASE");
}

/// `save_backend_state`: GET_VRING_BASE for every queue (which stops it), then SAVE in the
/// STOPPED phase over a pipe, read to its end, then CHECK_DEVICE_STATE. Returns the state
/// and the bases.
pub fn save(dev: &Device, queues: &[&Virtqueue]) -> (Vec<u8>, Vec<u16>) {
    use std::io::Read;
    let bases = queues
        .iter()
        .map(|q| {
            let b = dev.fe.get_vring_base(q.index()).expect("GET_VRING_BASE");
            u16::try_from(b).expect("a vring base fits u16")
        })
        .collect();
    let (mut rd, wr) = pipe();
    let back = dev
        .fe
        .set_device_state_fd(
            VhostTransferStateDirection::SAVE,
            VhostTransferStatePhase::STOPPED,
            wr.into(),
        )
        .expect("SET_DEVICE_STATE_FD (SAVE)");
    assert!(back.is_none(), "the daemon offered its own channel");
    let mut blob = Vec::new();
    rd.read_to_end(&mut blob).expect("read the device state");
    dev.fe
        .check_device_state()
        .expect("CHECK_DEVICE_STATE (SAVE)");
    (blob, bases)
}

/// The destination of a snapshot/restore or a live migration: `Fs::new` with a saved state
/// connects, sends SET_PROTOCOL_FEATURES with the source's acked features, then
/// `restore_backend_state` (LOAD and CHECK_DEVICE_STATE) before anything else; activation
/// follows with the saved vring bases. Returns the frontend, or the error of the check.
pub fn restore(
    socket: &std::path::Path,
    negotiated: &Negotiated,
    nqueues: usize,
    blob: &[u8],
) -> (Frontend, Result<(), vhost::Error>) {
    use std::io::Write;
    let (mut fe, _) = connect(socket, nqueues);
    fe.set_protocol_features(negotiated.protocol_acked)
        .expect("SET_PROTOCOL_FEATURES");
    need_reply(&mut fe, negotiated.protocol_acked);
    let (rd, mut wr) = pipe();
    let back = fe
        .set_device_state_fd(
            VhostTransferStateDirection::LOAD,
            VhostTransferStatePhase::STOPPED,
            rd.into(),
        )
        .expect("SET_DEVICE_STATE_FD (LOAD)");
    assert!(back.is_none(), "the daemon offered its own channel");
    // EPIPE when the daemon stopped reading: its check reports why.
    let _ = wr.write_all(blob);
    drop(wr);
    let checked = fe.check_device_state();
    (fe, checked)
}
