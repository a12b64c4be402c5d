//! io_uring for FUSE over io_uring: a small ring of 128-byte SQEs (`IORING_SETUP_SQE128`)
//! that carries device commands (`IORING_OP_URING_CMD`) and one poll, through the
//! `io-uring` crate.
//!
//! The crate's `UringCmd80` builder sets no `len`; FUSE's REGISTER needs `len` = 2 (the
//! number of iovecs at `addr`), so [`CmdRing::push_cmd`] writes it into the built SQE.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use io_uring::{IoUring, cqueue, opcode, squeue, types};

/// Offset of `len` in `struct io_uring_sqe` (after opcode, flags, ioprio, fd, off, addr).
const SQE_LEN_OFFSET: usize = 24;
/// Bytes of the command area of a 128-byte SQE.
pub const CMD_AREA: usize = 80;

/// One completion: the `user_data` of its SQE and the result (negative errno on failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub user_data: u64,
    pub result: i32,
}

/// An io_uring with 128-byte SQEs, used by one thread.
pub struct CmdRing {
    ring: IoUring<squeue::Entry128, cqueue::Entry>,
}

impl std::fmt::Debug for CmdRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmdRing").finish_non_exhaustive()
    }
}

impl CmdRing {
    /// A ring of `entries` 128-byte SQEs (`io_uring_setup` with `IORING_SETUP_SQE128`).
    ///
    /// # Errors
    /// The errno of `io_uring_setup` (ENOSYS: no io_uring; EPERM: disabled by the
    /// `kernel.io_uring_disabled` sysctl or by seccomp).
    pub fn new(entries: u32) -> io::Result<Self> {
        let ring = IoUring::<squeue::Entry128, cqueue::Entry>::builder().build(entries)?;
        Ok(Self { ring })
    }

    /// Queues a device command `cmd_op` on `fd` with the 80-byte command `cmd`, and
    /// `addr`/`len` (0 when unused).
    ///
    /// # Safety
    /// When `addr` is not 0 it must point to memory the command's driver reads or writes
    /// (for FUSE: `len` iovecs), valid until the command completes; so must the memory
    /// those iovecs describe, as long as the driver may use it.
    ///
    /// # Errors
    /// The submission queue is full (EBUSY).
    pub unsafe fn push_cmd(
        &mut self,
        fd: BorrowedFd<'_>,
        cmd_op: u32,
        cmd: [u8; CMD_AREA],
        addr: u64,
        len: u32,
        user_data: u64,
    ) -> io::Result<()> {
        let sqe = opcode::UringCmd80::new(types::Fd(fd.as_raw_fd()), cmd_op)
            .cmd(cmd)
            .addr(Some(addr))
            .build()
            .user_data(user_data);
        let sqe = with_len(sqe, len);
        // SAFETY: the caller guarantees that what `addr` points to outlives the command.
        unsafe { self.ring.submission().push(&sqe) }
            .map_err(|_| io::Error::from_raw_os_error(libc::EBUSY))
    }

    /// Queues a one-shot poll for input on `fd`.
    ///
    /// # Errors
    /// The submission queue is full (EBUSY).
    pub fn push_poll_in(&mut self, fd: BorrowedFd<'_>, user_data: u64) -> io::Result<()> {
        let sqe = opcode::PollAdd::new(types::Fd(fd.as_raw_fd()), libc::POLLIN as u32)
            .build()
            .user_data(user_data);
        // SAFETY: a poll points to no memory of ours; `fd` is only used by number.
        unsafe { self.ring.submission().push(&sqe.into()) }
            .map_err(|_| io::Error::from_raw_os_error(libc::EBUSY))
    }

    /// Submits what was queued without waiting (retrying on EINTR).
    ///
    /// # Errors
    /// The errno of `io_uring_enter`.
    pub fn submit(&mut self) -> io::Result<()> {
        loop {
            match self.ring.submit() {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Submits what was queued and waits for at least one completion (retrying on EINTR).
    ///
    /// # Errors
    /// The errno of `io_uring_enter`.
    pub fn submit_and_wait(&mut self) -> io::Result<()> {
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes the completions that arrived.
    pub fn completions(&mut self) -> Vec<Completion> {
        self.ring
            .completion()
            .map(|c| Completion {
                user_data: c.user_data(),
                result: c.result(),
            })
            .collect()
    }
}

/// `sqe` with its `len` field set.
fn with_len(sqe: squeue::Entry128, len: u32) -> squeue::Entry128 {
    // SAFETY: `Entry128` is #[repr(C)]: a #[repr(C)] `io_uring_sqe` (64 bytes) followed by
    // 64 command bytes, 128 bytes of plain integers with no padding, so it and [u8; 128]
    // convert both ways and every bit pattern is valid.
    let mut raw: [u8; 128] = unsafe { std::mem::transmute(sqe) };
    raw[SQE_LEN_OFFSET..SQE_LEN_OFFSET + 4].copy_from_slice(&len.to_ne_bytes());
    // SAFETY: as above.
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn len_lands_in_the_sqe_len_field() {
        let sqe = opcode::UringCmd80::new(types::Fd(7), 2)
            .cmd([0xaa; CMD_AREA])
            .addr(Some(0x1122))
            .build()
            .user_data(9);
        let sqe = with_len(sqe, 2);
        // SAFETY: as in `with_len`.
        let raw: [u8; 128] = unsafe { std::mem::transmute(sqe) };
        assert_eq!(raw[0], io_uring::opcode::UringCmd80::CODE, "opcode at 0");
        assert_eq!(i32::from_ne_bytes(raw[4..8].try_into().unwrap()), 7, "fd");
        assert_eq!(u64::from_ne_bytes(raw[16..24].try_into().unwrap()), 0x1122);
        assert_eq!(
            u32::from_ne_bytes(raw[24..28].try_into().unwrap()),
            2,
            "len"
        );
        assert_eq!(
            u64::from_ne_bytes(raw[32..40].try_into().unwrap()),
            9,
            "user_data"
        );
        assert_eq!(&raw[48..128], &[0xaa; CMD_AREA][..], "the command area");
    }
}
