//! Process capabilities and `no_new_privs`: `capget`/`capset` (version 3, 64-bit sets),
//! the bounding and ambient sets (`prctl`).
//!
//! Capability sets are per thread in the kernel: call these while the process is
//! single-threaded, so every thread started later inherits the result.

use std::io;

use super::check_retval;

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets as two 32-bit words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`: one 32-bit word of each set.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The three capability sets of a thread, one bit per capability number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

/// `capget(2)` of the calling thread.
///
/// # Errors
/// The errno of `capget`.
pub fn capget() -> io::Result<CapSets> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: `header` is a valid version-3 header and `data` holds the two words version 3
    // writes; both outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    check_retval(ret)?;
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok(CapSets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

/// `capset(2)` of the calling thread.
///
/// # Errors
/// The errno of `capset` (EPERM when adding a capability not in the permitted set).
pub fn capset(sets: CapSets) -> io::Result<()> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let word = |s: u64, i: u32| (s >> (32 * i)) as u32;
    let data = [0, 1].map(|i| CapData {
        effective: word(sets.effective, i),
        permitted: word(sets.permitted, i),
        inheritable: word(sets.inheritable, i),
    });
    // SAFETY: `header` is a valid version-3 header and `data` the two words version 3
    // reads; both outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    check_retval(ret).map(drop)
}

/// Whether capability `cap` is in the bounding set (`prctl(PR_CAPBSET_READ)`).
///
/// # Errors
/// EINVAL: the running kernel does not know `cap`.
pub fn bounding_set_has(cap: u32) -> io::Result<bool> {
    // SAFETY: PR_CAPBSET_READ takes an integer and touches no memory.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
    check_retval(ret).map(|r| r == 1)
}

/// Removes `cap` from the bounding set (`prctl(PR_CAPBSET_DROP)`); needs CAP_SETPCAP.
///
/// # Errors
/// The errno of `prctl` (EPERM without CAP_SETPCAP, EINVAL for an unknown capability).
pub fn bounding_set_drop(cap: u32) -> io::Result<()> {
    // SAFETY: PR_CAPBSET_DROP takes an integer and touches no memory.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
    check_retval(ret).map(drop)
}

/// Empties the ambient set (`prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)`).
///
/// # Errors
/// The errno of `prctl` (EINVAL on kernels before 4.3, which have no ambient set).
pub fn clear_ambient_set() -> io::Result<()> {
    // SAFETY: integer arguments only.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    check_retval(ret).map(drop)
}

/// Sets `no_new_privs` (`prctl(PR_SET_NO_NEW_PRIVS)`): no later `execve` can grant
/// privileges (setuid bits, file capabilities), and the flag cannot be cleared.
///
/// # Errors
/// The errno of `prctl`.
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    check_retval(ret).map(drop)
}

/// Whether `no_new_privs` is set (`prctl(PR_GET_NO_NEW_PRIVS)`).
///
/// # Errors
/// The errno of `prctl`.
pub fn no_new_privs() -> io::Result<bool> {
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    check_retval(ret).map(|r| r == 1)
}
