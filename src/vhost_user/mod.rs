//! The vhost-user virtio-fs device: queues, workers, config space.
