//! The frontend side of a live migration: a device that acked DEVICE_STATE and LOG_SHMFD,
//! and the SAVE / LOAD transfers of the device state through a pipe.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

use vhost::vhost_user::VhostUserFrontend;
use vhost::vhost_user::VhostUserProtocolFeatures;
use vhost::vhost_user::message::{VhostTransferStateDirection, VhostTransferStatePhase};

use super::daemon::Daemon;
use super::frontend::{Device, F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, PROTOCOL_WANTED};

/// Connects with one request queue, acking what QEMU acks to migrate a vhost-user-fs
/// device.
pub fn connect(d: &Daemon) -> Device {
    let dev = Device::connect_acking(
        d.socket(),
        1,
        F_VERSION_1 | F_EVENT_IDX | F_INDIRECT_DESC,
        PROTOCOL_WANTED
            | VhostUserProtocolFeatures::LOG_SHMFD
            | VhostUserProtocolFeatures::DEVICE_STATE,
    );
    assert!(
        dev.negotiated
            .protocol_acked
            .contains(VhostUserProtocolFeatures::DEVICE_STATE),
        "DEVICE_STATE not offered: QEMU cannot migrate the device state"
    );
    dev
}

/// A pipe (read end, write end).
pub fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(ret, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 succeeded: both fds are new and owned by nobody else.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

/// SAVE: the source daemon's state, as QEMU reads it into its migration stream.
pub fn save(dev: &Device) -> Result<Vec<u8>, vhost::Error> {
    let (mut rd, wr) = pipe();
    let back = dev.fe.set_device_state_fd(
        VhostTransferStateDirection::SAVE,
        VhostTransferStatePhase::STOPPED,
        OwnedFd::from(wr),
    )?;
    assert!(back.is_none(), "the daemon offered its own channel");
    let mut blob = Vec::new();
    rd.read_to_end(&mut blob).expect("read the device state");
    dev.fe.check_device_state()?;
    Ok(blob)
}

/// LOAD: hands `blob` to the destination daemon, as QEMU does from its migration stream,
/// and asks whether it was restored.
pub fn load(dev: &Device, blob: &[u8]) -> Result<(), vhost::Error> {
    let (rd, mut wr) = pipe();
    let back = dev.fe.set_device_state_fd(
        VhostTransferStateDirection::LOAD,
        VhostTransferStatePhase::STOPPED,
        OwnedFd::from(rd),
    )?;
    assert!(back.is_none(), "the daemon offered its own channel");
    // The daemon reads while we write (the pipe holds 64 KiB).
    let blob = blob.to_vec();
    let writer = std::thread::spawn(move || {
        // EPIPE when the daemon stopped reading (a state too large): its check reports it.
        let _ = wr.write_all(&blob);
    });
    writer.join().expect("writer thread");
    dev.fe.check_device_state()
}
