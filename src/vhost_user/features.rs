//! The virtio and vhost-user protocol features the device offers.

use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use virtio_bindings::bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::bindings::virtio_ring::{
    VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};

/// Virtio features: virtio 1.0, event-index notification suppression, indirect descriptors,
/// the vhost-user protocol-features bit, and LOG_ALL (the device logs the guest pages it
/// writes while the frontend migrates guest memory).
pub fn virtio_features() -> u64 {
    (1 << VIRTIO_F_VERSION_1)
        | (1 << VIRTIO_RING_F_EVENT_IDX)
        | (1 << VIRTIO_RING_F_INDIRECT_DESC)
        | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
        | VhostUserVirtioFeatures::LOG_ALL.bits()
}

/// vhost-user protocol features. CONFIG (the frontend reads the tag from us) is offered only
/// when the operator gave a tag: QEMU takes the tag from its own command line, and QEMU
/// 7.1-8.0 crash when a backend offers CONFIG. SHMEM (shared-memory regions, for the DAX
/// window) only with a window: it rides on BACKEND_REQ, BACKEND_SEND_FD and REPLY_ACK.
/// LOG_SHMFD: the frontend shares its dirty-page log with SET_LOG_BASE, which QEMU requires
/// before it migrates a VM. DEVICE_STATE: the FUSE session and what the guest holds travel
/// in the migration stream.
///
/// STATUS is not offered, although SET_STATUS with DRIVER_OK is the protocol's own signal
/// that the guest driver is up (which the DAX window waits for, see `backend_channel`):
/// once it is negotiated QEMU sends GET_STATUS and SET_STATUS after SET_FEATURES and at
/// every device start and stop, and vhost 0.18's backend request handler has no case for
/// either (it answers with an error that ends the connection). The first queue kick stands
/// in for DRIVER_OK instead.
pub fn protocol_features(with_config: bool, with_shmem: bool) -> VhostUserProtocolFeatures {
    let mut f = VhostUserProtocolFeatures::MQ
        | VhostUserProtocolFeatures::REPLY_ACK
        | VhostUserProtocolFeatures::BACKEND_REQ
        | VhostUserProtocolFeatures::BACKEND_SEND_FD
        | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS
        | VhostUserProtocolFeatures::LOG_SHMFD
        | VhostUserProtocolFeatures::DEVICE_STATE;
    if with_config {
        f |= VhostUserProtocolFeatures::CONFIG;
    }
    if with_shmem {
        f |= VhostUserProtocolFeatures::SHMEM;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_offered_only_with_a_tag() {
        assert!(protocol_features(true, false).contains(VhostUserProtocolFeatures::CONFIG));
        assert!(!protocol_features(false, false).contains(VhostUserProtocolFeatures::CONFIG));
        for with in [false, true] {
            let f = protocol_features(with, with);
            assert!(f.contains(
                VhostUserProtocolFeatures::MQ
                    | VhostUserProtocolFeatures::REPLY_ACK
                    | VhostUserProtocolFeatures::BACKEND_REQ
                    | VhostUserProtocolFeatures::BACKEND_SEND_FD
                    | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS
                    | VhostUserProtocolFeatures::LOG_SHMFD
                    | VhostUserProtocolFeatures::DEVICE_STATE
            ));
        }
    }

    #[test]
    fn shmem_is_bit_22_and_only_with_a_window() {
        // vhost 0.16 had it at bit 21; the spec and QEMU 11 use 22.
        assert_eq!(VhostUserProtocolFeatures::SHMEM.bits(), 1 << 22);
        assert!(protocol_features(true, true).contains(VhostUserProtocolFeatures::SHMEM));
        assert!(!protocol_features(true, false).contains(VhostUserProtocolFeatures::SHMEM));
    }

    /// vhost 0.18 cannot serve SET_STATUS/GET_STATUS: offering STATUS would end every
    /// connection with a QEMU that uses it (see `protocol_features`).
    #[test]
    fn status_is_never_offered() {
        for (config, shmem) in [(false, false), (true, false), (false, true), (true, true)] {
            let f = protocol_features(config, shmem);
            assert!(!f.contains(VhostUserProtocolFeatures::STATUS));
        }
    }

    #[test]
    fn virtio_features_include_version_1_and_event_idx() {
        let f = virtio_features();
        assert_ne!(f & (1 << 32), 0, "VIRTIO_F_VERSION_1");
        assert_ne!(f & (1 << 29), 0, "VIRTIO_RING_F_EVENT_IDX");
        assert_ne!(f & (1 << 28), 0, "VIRTIO_RING_F_INDIRECT_DESC");
        assert_ne!(f & (1 << 30), 0, "VHOST_USER_F_PROTOCOL_FEATURES");
        assert_ne!(f & (1 << 26), 0, "VHOST_F_LOG_ALL");
    }
}
