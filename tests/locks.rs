//! POSIX record locks (GETLK, SETLK) and flock between lock owners. The daemon serves
//! locks only with a thread pool (a blocking SETLKW must not stall a queue).

mod common;

use std::fs;

use common::fuse::{Fuse, ROOT};
use common::start;
use vhostfsd::fuse::abi::{self, opcode};
use vm_memory::ByteValued;

/// One lock request: handle, lock owner, type and byte range (inclusive), flock or POSIX.
struct Req {
    fh: u64,
    owner: u64,
    typ: i32,
    range: (u64, u64),
    flock: bool,
}

impl Req {
    fn new(fh: u64, owner: u64, typ: i32, range: (u64, u64), flock: bool) -> Self {
        Self {
            fh,
            owner,
            typ,
            range,
            flock,
        }
    }
}

fn lk(f: &mut Fuse, op: u32, node: u64, r: Req) -> Result<abi::FileLock, i32> {
    let arg = common::fuse::lock(r.fh, r.owner, r.typ, r.range, r.flock);
    let b = f.call_ok(op, node, &[arg.as_slice()], 24)?;
    if op == opcode::GETLK {
        Ok(common::fuse::parse::<abi::LkOut>(&b).lk)
    } else {
        Ok(abi::FileLock::default())
    }
}

#[test]
fn posix_locks_conflict_between_owners() {
    require_root!();
    let (d, mut f) = start(&["--thread-pool-size", "2"]);
    if f.init_flags() & abi::init_flags::POSIX_LOCKS == 0 {
        panic!("POSIX_LOCKS not negotiated");
    }
    fs::write(d.path("x"), vec![0u8; 1000]).unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    let fa = f.open(e, libc::O_RDWR).unwrap().fh;
    let fb = f.open(e, libc::O_RDWR).unwrap().fh;
    let wr = libc::F_WRLCK;
    lk(
        &mut f,
        opcode::SETLK,
        e,
        Req::new(fa, 1, wr, (0, 99), false),
    )
    .unwrap();
    // Owner 2 sees owner 1's lock.
    let l = lk(
        &mut f,
        opcode::GETLK,
        e,
        Req::new(fb, 2, wr, (50, 60), false),
    )
    .unwrap();
    assert_eq!(l.typ, wr as u32);
    assert_eq!((l.start, l.end), (0, 99));
    // And cannot take it.
    assert_eq!(
        lk(
            &mut f,
            opcode::SETLK,
            e,
            Req {
                fh: fb,
                owner: 2,
                typ: wr,
                range: (50, 60),
                flock: false
            }
        )
        .unwrap_err(),
        libc::EAGAIN
    );
    // A range outside is free.
    let l = lk(
        &mut f,
        opcode::GETLK,
        e,
        Req::new(fb, 2, wr, (200, 300), false),
    )
    .unwrap();
    assert_eq!(l.typ, libc::F_UNLCK as u32);
    lk(
        &mut f,
        opcode::SETLK,
        e,
        Req::new(fb, 2, wr, (200, 300), false),
    )
    .unwrap();
    // Unlock, then owner 2 can lock.
    lk(
        &mut f,
        opcode::SETLK,
        e,
        Req::new(fa, 1, libc::F_UNLCK, (0, 99), false),
    )
    .unwrap();
    lk(
        &mut f,
        opcode::SETLK,
        e,
        Req::new(fb, 2, wr, (50, 60), false),
    )
    .unwrap();
}

#[test]
fn flock_conflicts_between_open_files() {
    require_root!();
    let (d, mut f) = start(&["--thread-pool-size", "2"]);
    fs::write(d.path("x"), b"").unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    let fa = f.open(e, libc::O_RDONLY).unwrap().fh;
    let fb = f.open(e, libc::O_RDONLY).unwrap().fh;
    lk(
        &mut f,
        opcode::SETLK,
        e,
        Req::new(fa, 1, libc::F_WRLCK, (0, u64::MAX), true),
    )
    .unwrap();
    assert_eq!(
        lk(
            &mut f,
            opcode::SETLK,
            e,
            Req {
                fh: fb,
                owner: 2,
                typ: libc::F_WRLCK,
                range: (0, u64::MAX),
                flock: true
            }
        )
        .unwrap_err(),
        libc::EAGAIN
    );
    // Closing the file drops its flock: the kernel's RELEASE says so with
    // RELEASE_FLOCK_UNLOCK and the lock owner.
    let rel = abi::ReleaseIn {
        fh: fa,
        flags: libc::O_RDONLY as u32,
        release_flags: abi::RELEASE_FLOCK_UNLOCK,
        lock_owner: 1,
    };
    f.call_ok(opcode::RELEASE, e, &[rel.as_slice()], 0).unwrap();
    lk(
        &mut f,
        opcode::SETLK,
        e,
        Req::new(fb, 2, libc::F_WRLCK, (0, u64::MAX), true),
    )
    .unwrap();
}

#[test]
fn an_owners_locks_go_on_flush_and_release_even_when_the_request_fails() {
    require_root!();
    let (d, mut f) = start(&["--thread-pool-size", "2"]);
    fs::write(d.path("x"), vec![0u8; 100]).unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    let fa = f.open(e, libc::O_RDWR).unwrap().fh;
    let fb = f.open(e, libc::O_RDWR).unwrap().fh;
    let wr = libc::F_WRLCK;
    let gone = fa + fb + 1000;
    // POSIX: owner 1 locks, then its FLUSH names a handle that is already gone.
    lk(&mut f, opcode::SETLK, e, Req::new(fa, 1, wr, (0, 9), false)).unwrap();
    let flush = abi::FlushIn {
        fh: gone,
        lock_owner: 1,
        ..Default::default()
    };
    assert_eq!(
        f.call_ok(opcode::FLUSH, e, &[flush.as_slice()], 0)
            .map(drop),
        Err(libc::EBADF)
    );
    lk(&mut f, opcode::SETLK, e, Req::new(fb, 2, wr, (0, 9), false))
        .expect("owner 1's POSIX lock outlived its FLUSH");
    // flock: owner 3 locks, then its RELEASE (FLOCK_UNLOCK) names a handle already gone.
    lk(
        &mut f,
        opcode::SETLK,
        e,
        Req::new(fa, 3, wr, (0, u64::MAX), true),
    )
    .unwrap();
    let rel = abi::ReleaseIn {
        fh: gone,
        flags: libc::O_RDWR as u32,
        release_flags: abi::RELEASE_FLOCK_UNLOCK,
        lock_owner: 3,
    };
    assert_eq!(
        f.call_ok(opcode::RELEASE, e, &[rel.as_slice()], 0)
            .map(drop),
        Err(libc::EBADF)
    );
    lk(
        &mut f,
        opcode::SETLK,
        e,
        Req::new(fb, 4, wr, (0, u64::MAX), true),
    )
    .expect("owner 3's flock outlived its RELEASE");
    // RELEASE with RELEASE_FLUSH is also a FLUSH: owner 2's POSIX locks go.
    let rel = abi::ReleaseIn {
        fh: fb,
        flags: libc::O_RDWR as u32,
        release_flags: abi::RELEASE_FLUSH,
        lock_owner: 2,
    };
    f.call_ok(opcode::RELEASE, e, &[rel.as_slice()], 0).unwrap();
    lk(&mut f, opcode::SETLK, e, Req::new(fa, 5, wr, (0, 9), false))
        .expect("owner 2's POSIX lock outlived a RELEASE with RELEASE_FLUSH");
}
