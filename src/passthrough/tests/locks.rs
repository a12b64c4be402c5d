//! Tests of POSIX and flock locks between guest lock owners (and host processes).

use std::fs::{self, File};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::fixture::*;
use crate::fuse::abi::{FileLock, LK_FLOCK, LkIn, RELEASE_FLOCK_UNLOCK, init_flags};
use crate::fuse::filesystem::EntryOps;
use crate::fuse::filesystem::FileOps;
use crate::fuse::filesystem::LockOps;
use crate::fuse::filesystem::SessionOps;
use crate::oslib::fs as sys;
use crate::passthrough::PassthroughFs;

const EOF: u64 = i64::MAX as u64;

fn lk(fh: u64, owner: u64, typ: i32, start: u64, end: u64) -> LkIn {
    LkIn {
        fh,
        owner,
        lk: FileLock {
            start,
            end,
            typ: typ as u32,
            pid: 7,
        },
        lk_flags: 0,
        padding: 0,
    }
}

/// A file "f" of 1000 bytes, opened read-write twice (two guest files).
fn setup() -> (Fixture, u64, u64, u64) {
    let t = Fixture::locking();
    fs::write(t.path("f"), vec![0u8; 1000]).unwrap();
    let f = t.lookup("f").unwrap().inode;
    let rw = libc::O_RDWR as u32;
    let (a, _) = t.fs.open(&ROOT, f, rw, 0).unwrap();
    let (b, _) = t.fs.open(&ROOT, f, rw, 0).unwrap();
    (t, f, a, b)
}

#[test]
fn owners_conflict_and_getlk_reports_the_holder() {
    let (t, f, a, b) = setup();
    t.fs.setlk(&ROOT, f, &lk(a, 1, libc::F_WRLCK, 0, 99), false)
        .unwrap();
    let err =
        t.fs.setlk(&ROOT, f, &lk(b, 2, libc::F_WRLCK, 50, 60), false);
    assert_eq!(errno_of(err), libc::EAGAIN);
    let got =
        t.fs.getlk(&ROOT, f, &lk(b, 2, libc::F_RDLCK, 0, EOF))
            .unwrap();
    let want = FileLock {
        start: 0,
        end: 99,
        typ: libc::F_WRLCK as u32,
        pid: 0,
    };
    assert_eq!(got, want);
    // Its own locks never conflict with an owner.
    let own =
        t.fs.getlk(&ROOT, f, &lk(a, 1, libc::F_WRLCK, 0, EOF))
            .unwrap();
    assert_eq!(own.typ, libc::F_UNLCK as u32);
    // Beyond the locked range there is no conflict.
    t.fs.setlk(&ROOT, f, &lk(b, 2, libc::F_WRLCK, 100, EOF), false)
        .unwrap();
    t.fs.setlk(&ROOT, f, &lk(a, 1, libc::F_UNLCK, 0, 99), false)
        .unwrap();
    t.fs.setlk(&ROOT, f, &lk(b, 2, libc::F_WRLCK, 50, 60), false)
        .unwrap();
}

#[test]
fn one_owner_splits_and_upgrades_its_own_locks() {
    let (t, f, a, b) = setup();
    t.fs.setlk(&ROOT, f, &lk(a, 1, libc::F_RDLCK, 0, EOF), false)
        .unwrap();
    // The same owner through another guest file: the same lock set.
    t.fs.setlk(&ROOT, f, &lk(b, 1, libc::F_WRLCK, 10, 20), false)
        .unwrap();
    t.fs.setlk(&ROOT, f, &lk(a, 1, libc::F_UNLCK, 15, 15), false)
        .unwrap();
    let probe = |start, end| {
        t.fs.getlk(&ROOT, f, &lk(b, 9, libc::F_RDLCK, start, end))
            .unwrap()
    };
    assert_eq!(probe(15, 15).typ, libc::F_UNLCK as u32);
    assert_eq!(probe(10, 14).typ, libc::F_WRLCK as u32);
    // Read locks of another owner only conflict with writes.
    assert_eq!(probe(500, 600).typ, libc::F_UNLCK as u32);
    let w =
        t.fs.getlk(&ROOT, f, &lk(b, 9, libc::F_WRLCK, 500, 600))
            .unwrap();
    assert_eq!(w.typ, libc::F_RDLCK as u32);
}

#[test]
fn flush_releases_the_owners_posix_locks() {
    let (t, f, a, b) = setup();
    t.fs.setlk(&ROOT, f, &lk(a, 1, libc::F_WRLCK, 0, EOF), false)
        .unwrap();
    assert_eq!(
        errno_of(t.fs.setlk(&ROOT, f, &lk(b, 2, libc::F_RDLCK, 0, 0), false)),
        libc::EAGAIN
    );
    // Another owner's close does not release them.
    t.fs.flush(&ROOT, f, b, 2).unwrap();
    assert_eq!(
        errno_of(t.fs.setlk(&ROOT, f, &lk(b, 2, libc::F_RDLCK, 0, 0), false)),
        libc::EAGAIN
    );
    t.fs.flush(&ROOT, f, a, 1).unwrap();
    t.fs.setlk(&ROOT, f, &lk(b, 2, libc::F_RDLCK, 0, 0), false)
        .unwrap();
}

#[test]
fn guest_locks_conflict_with_host_processes() {
    let (t, f, a, _) = setup();
    t.fs.setlk(&ROOT, f, &lk(a, 1, libc::F_WRLCK, 0, EOF), false)
        .unwrap();
    let host = File::options()
        .read(true)
        .write(true)
        .open(t.path("f"))
        .unwrap();
    let mut fl = libc::flock64 {
        l_type: libc::F_RDLCK as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    let err = sys::fcntl_lock(host.as_fd(), libc::F_OFD_SETLK, &mut fl);
    assert_eq!(errno_of(err), libc::EAGAIN);
    // The guest sees a host holder too.
    t.fs.setlk(&ROOT, f, &lk(a, 1, libc::F_UNLCK, 0, EOF), false)
        .unwrap();
    sys::fcntl_lock(host.as_fd(), libc::F_OFD_SETLK, &mut fl).unwrap();
    let got =
        t.fs.getlk(&ROOT, f, &lk(a, 1, libc::F_WRLCK, 0, EOF))
            .unwrap();
    assert_eq!(got.typ, libc::F_RDLCK as u32);
}

#[test]
fn flock_per_guest_file() {
    let (t, f, a, b) = setup();
    let fl = |fh, owner, typ| LkIn {
        lk_flags: LK_FLOCK,
        ..lk(fh, owner, typ, 0, EOF)
    };
    t.fs.setlk(&ROOT, f, &fl(a, 10, libc::F_WRLCK), false)
        .unwrap();
    let err = t.fs.setlk(&ROOT, f, &fl(b, 20, libc::F_RDLCK), false);
    assert_eq!(errno_of(err), libc::EWOULDBLOCK);
    // The last close of the locking file drops its flock.
    t.fs.release(&ROOT, f, a, 0, RELEASE_FLOCK_UNLOCK, 10)
        .unwrap();
    t.fs.setlk(&ROOT, f, &fl(b, 20, libc::F_RDLCK), false)
        .unwrap();
    t.fs.setlk(&ROOT, f, &fl(b, 20, libc::F_UNLCK), false)
        .unwrap();
    assert_eq!(
        errno_of(t.fs.getlk(&ROOT, f, &fl(b, 20, libc::F_RDLCK))),
        libc::EINVAL
    );
}

#[test]
fn setlkw_waits_for_the_holder() {
    let (t, f, a, b) = setup();
    t.fs.setlk(&ROOT, f, &lk(a, 1, libc::F_WRLCK, 0, EOF), false)
        .unwrap();
    let granted = AtomicBool::new(false);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            t.fs.setlk(&ROOT, f, &lk(b, 2, libc::F_WRLCK, 0, EOF), true)
                .unwrap();
            granted.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(!granted.load(Ordering::SeqCst));
        t.fs.setlk(&ROOT, f, &lk(a, 1, libc::F_UNLCK, 0, EOF), false)
            .unwrap();
        waiter.join().unwrap();
    });
    assert!(granted.load(Ordering::SeqCst));
}

#[test]
fn bad_handles_and_ranges() {
    let (t, f, a, _) = setup();
    let err =
        t.fs.setlk(&ROOT, f, &lk(999, 1, libc::F_WRLCK, 0, EOF), false);
    assert_eq!(errno_of(err), libc::EBADF);
    let err = t.fs.setlk(&ROOT, f, &lk(a, 1, libc::F_WRLCK, 10, 5), false);
    assert_eq!(errno_of(err), libc::EINVAL);
    let err = t.fs.setlk(&ROOT, f, &lk(a, 1, 77, 0, 5), false);
    assert_eq!(errno_of(err), libc::EINVAL);
    // Unlocking what was never locked is fine and opens nothing.
    t.fs.setlk(&ROOT, f, &lk(a, 5, libc::F_UNLCK, 0, EOF), false)
        .unwrap();
    assert!(t.fs.locks.is_empty());
    t.fs.destroy();
}

#[test]
fn locks_are_asked_for_only_when_enabled() {
    let t = Fixture::new();
    let both = init_flags::POSIX_LOCKS | init_flags::FLOCK_LOCKS;
    assert_eq!(t.fs.init(u64::MAX).unwrap() & both, 0);
    let cfg = t.fs.cfg.clone();
    let fs = PassthroughFs::new(cfg, File::open("/proc/self/fd").unwrap())
        .unwrap()
        .with_locks(true);
    assert_eq!(fs.init(u64::MAX).unwrap() & both, both);
}

#[test]
fn lock_requests_answer_enosys_when_locks_are_not_served() {
    let t = Fixture::new();
    fs::write(t.path("f"), vec![0u8; 10]).unwrap();
    let f = t.lookup("f").unwrap().inode;
    let (a, _) = t.fs.open(&ROOT, f, libc::O_RDWR as u32, 0).unwrap();
    let req = lk(a, 1, libc::F_WRLCK, 0, EOF);
    assert_eq!(errno_of(t.fs.setlk(&ROOT, f, &req, true)), libc::ENOSYS);
    assert_eq!(errno_of(t.fs.getlk(&ROOT, f, &req)), libc::ENOSYS);
}

#[test]
fn forgetting_the_inode_drops_its_owners_and_a_failed_first_lock_keeps_none() {
    let (t, f, a, b) = setup();
    t.fs.setlk(&ROOT, f, &lk(a, 1, libc::F_WRLCK, 0, EOF), false)
        .unwrap();
    // GETLK opens nothing for an owner without locks; a first SETLK that fails keeps no fd.
    t.fs.getlk(&ROOT, f, &lk(b, 2, libc::F_RDLCK, 0, EOF))
        .unwrap();
    assert_eq!(
        errno_of(t.fs.setlk(&ROOT, f, &lk(b, 3, libc::F_RDLCK, 0, 0), false)),
        libc::EAGAIN
    );
    assert_eq!(t.fs.locks.len(), 1);
    t.fs.release(&ROOT, f, a, 0, 0, 0).unwrap();
    t.fs.release(&ROOT, f, b, 0, 0, 0).unwrap();
    t.fs.forget(&ROOT, f, 1);
    assert!(t.fs.locks.is_empty());
}
