//! File operations: OPEN, CREATE, TMPFILE, READ, WRITE, FLUSH, RELEASE, FSYNC, FALLOCATE,
//! LSEEK, COPY_FILE_RANGE; checked on the host.

mod common;

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::fuse::{Channel, ROOT};
use common::{lstat, start};
use vhostfsd::fuse::abi::{self, opcode};
use vm_memory::ByteValued;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Creates `name` in the root, open read-write, mode 0644.
fn create_rw(c: &mut Channel, name: &str) -> (abi::EntryOut, abi::OpenOut) {
    c.create(
        ROOT,
        name,
        libc::O_RDWR | libc::O_CREAT,
        libc::S_IFREG | 0o644,
    )
    .unwrap_or_else(|e| panic!("CREATE {name}: errno {e}"))
}

#[test]
fn create_write_read_release() {
    require_root!();
    let (d, mut f) = start(&[]);
    let (e, o) = f
        .create(
            ROOT,
            "new",
            libc::O_RDWR | libc::O_CREAT,
            libc::S_IFREG | 0o640,
        )
        .unwrap();
    assert_eq!(e.attr.mode, libc::S_IFREG | 0o640);
    assert_eq!(e.attr.ino, lstat(&d.path("new")).ino());
    assert_eq!(lstat(&d.path("new")).mode() & 0o7777, 0o640);
    assert_eq!(f.write(e.nodeid, o.fh, 0, b"hello world").unwrap(), 11);
    assert_eq!(f.write(e.nodeid, o.fh, 6, b"WORLD").unwrap(), 5);
    assert_eq!(fs::read(d.path("new")).unwrap(), b"hello WORLD");
    assert_eq!(f.read(e.nodeid, o.fh, 0, 100).unwrap(), b"hello WORLD");
    assert_eq!(f.read(e.nodeid, o.fh, 6, 3).unwrap(), b"WOR");
    assert_eq!(f.read(e.nodeid, o.fh, 11, 10).unwrap(), b"", "read at EOF");
    assert_eq!(
        f.read(e.nodeid, o.fh, 1000, 10).unwrap(),
        b"",
        "read past EOF"
    );
    f.flush(e.nodeid, o.fh).unwrap();
    f.release(e.nodeid, o.fh).unwrap();
}

#[test]
fn create_as_another_user_gives_the_file_to_that_user() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::set_permissions(d.shared(), fs::Permissions::from_mode(0o777)).unwrap();
    f.uid = 1000;
    f.gid = 1001;
    let (_, o) = f
        .create(
            ROOT,
            "mine",
            libc::O_WRONLY | libc::O_CREAT,
            libc::S_IFREG | 0o600,
        )
        .unwrap();
    let m = lstat(&d.path("mine"));
    assert_eq!((m.uid(), m.gid()), (1000, 1001));
    let _ = o;
}

#[test]
fn create_exclusive_of_an_existing_file_is_eexist() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("x"), b"keep").unwrap();
    let r = f.create(
        ROOT,
        "x",
        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
        libc::S_IFREG | 0o644,
    );
    assert_eq!(r.unwrap_err(), libc::EEXIST);
    assert_eq!(fs::read(d.path("x")).unwrap(), b"keep");
}

#[test]
fn open_truncate_and_append() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("x"), b"0123456789").unwrap();
    let e = f.lookup(ROOT, "x").unwrap();
    let o = f.open(e.nodeid, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    assert_eq!(lstat(&d.path("x")).len(), 0);
    f.write(e.nodeid, o.fh, 0, b"abc").unwrap();
    f.release(e.nodeid, o.fh).unwrap();
    let o = f.open(e.nodeid, libc::O_WRONLY | libc::O_APPEND).unwrap();
    // Like the kernel, send the append offset (the file size).
    f.write(e.nodeid, o.fh, 3, b"def").unwrap();
    f.release(e.nodeid, o.fh).unwrap();
    assert_eq!(fs::read(d.path("x")).unwrap(), b"abcdef");
}

#[test]
fn open_errors() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::create_dir(d.path("dir")).unwrap();
    fs::write(d.path("secret"), b"").unwrap();
    fs::set_permissions(d.path("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    let dir = f.lookup(ROOT, "dir").unwrap().nodeid;
    let secret = f.lookup(ROOT, "secret").unwrap().nodeid;
    assert_eq!(f.open(dir, libc::O_WRONLY).unwrap_err(), libc::EISDIR);
    assert_eq!(f.open(dir, libc::O_RDWR).unwrap_err(), libc::EISDIR);
    // The guest kernel checks permissions (virtio-fs mounts use default_permissions), so
    // an OPEN by another user is not checked here.
    f.open(secret, libc::O_RDONLY).unwrap();
}

#[test]
fn write_on_a_read_only_handle_is_ebadf_and_read_on_write_only_too() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("x"), b"data").unwrap();
    let e = f.lookup(ROOT, "x").unwrap();
    let ro = f.open(e.nodeid, libc::O_RDONLY).unwrap().fh;
    assert_eq!(f.write(e.nodeid, ro, 0, b"zz").unwrap_err(), libc::EBADF);
    let wo = f.open(e.nodeid, libc::O_WRONLY).unwrap().fh;
    assert_eq!(f.read(e.nodeid, wo, 0, 4).unwrap_err(), libc::EBADF);
    assert_eq!(fs::read(d.path("x")).unwrap(), b"data");
}

#[test]
fn a_one_mib_write_and_read_round_trip() {
    require_root!();
    let (d, mut f) = start(&[]);
    assert_eq!(f.init.max_write, abi::MAX_WRITE);
    let (e, o) = create_rw(&mut f, "big");
    let data = pattern(abi::MAX_WRITE as usize, 3);
    assert_eq!(
        f.write(e.nodeid, o.fh, 4096, &data).unwrap(),
        abi::MAX_WRITE
    );
    let host = fs::read(d.path("big")).unwrap();
    assert_eq!(host.len(), 4096 + data.len());
    assert!(host[..4096].iter().all(|&b| b == 0));
    assert!(
        host[4096..] == data[..],
        "host file differs from what was written"
    );
    let back = f.read(e.nodeid, o.fh, 4096, abi::MAX_WRITE).unwrap();
    assert!(back == data, "read back differs");
}

#[test]
fn read_into_several_writable_descriptors() {
    require_root!();
    let (d, mut f) = start(&[]);
    let data = pattern(10000, 9);
    fs::write(d.path("x"), &data).unwrap();
    let e = f.lookup(ROOT, "x").unwrap();
    let fh = f.open(e.nodeid, libc::O_RDONLY).unwrap().fh;
    let arg = abi::ReadIn {
        fh,
        offset: 0,
        size: 10000,
        ..Default::default()
    };
    let hdr = f.header(opcode::READ, e.nodeid, size_of::<abi::ReadIn>());
    // The out header alone, then the data spread over odd-sized buffers.
    let head =
        f.q.submit(&[hdr.as_slice(), arg.as_slice()], &[16, 100, 3333, 7000]);
    let c = f.q.wait(head);
    let r = f.decode(hdr.unique, c);
    assert_eq!(r.hdr.error, 0);
    assert!(r.body == data, "data split over descriptors differs");
}

#[test]
fn write_from_several_readable_descriptors() {
    require_root!();
    let (d, mut f) = start(&[]);
    let (e, o) = create_rw(&mut f, "x");
    let data = pattern(9000, 1);
    let arg = abi::WriteIn {
        fh: o.fh,
        offset: 0,
        size: 9000,
        ..Default::default()
    };
    let hdr = f.header(opcode::WRITE, e.nodeid, size_of::<abi::WriteIn>() + 9000);
    // Header and write_in split mid-struct, payload in three pieces.
    let mut req = hdr.as_slice().to_vec();
    req.extend_from_slice(arg.as_slice());
    let (a, rest) = req.split_at(30);
    let head = f.q.submit(
        &[a, rest, &data[..1], &data[1..5000], &data[5000..]],
        &[16 + 8],
    );
    let c = f.q.wait(head);
    let r = f.decode(hdr.unique, c);
    assert_eq!(r.hdr.error, 0);
    assert_eq!(common::fuse::parse::<abi::WriteOut>(&r.body).size, 9000);
    assert!(fs::read(d.path("x")).unwrap() == data);
}

#[test]
fn indirect_descriptors_carry_reads_and_writes() {
    require_root!();
    let (d, mut f) = start(&[]);
    f.indirect = true;
    let (e, o) = create_rw(&mut f, "x");
    let data = pattern(70000, 5);
    assert_eq!(f.write(e.nodeid, o.fh, 0, &data).unwrap(), 70000);
    assert!(fs::read(d.path("x")).unwrap() == data);
    assert!(f.read(e.nodeid, o.fh, 0, 70000).unwrap() == data);
    assert_eq!(f.getattr(e.nodeid).unwrap().size, 70000);
}

#[test]
fn flush_fsync_and_fdatasync_succeed_on_open_files() {
    require_root!();
    let (d, mut f) = start(&[]);
    let (e, o) = create_rw(&mut f, "x");
    f.write(e.nodeid, o.fh, 0, b"abc").unwrap();
    f.flush(e.nodeid, o.fh).unwrap();
    f.fsync(e.nodeid, o.fh, false).unwrap();
    f.fsync(e.nodeid, o.fh, true).unwrap();
    f.release(e.nodeid, o.fh).unwrap();
    assert_eq!(fs::read(d.path("x")).unwrap(), b"abc");
}

#[test]
fn a_released_handle_is_ebadf() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("x"), b"abc").unwrap();
    let e = f.lookup(ROOT, "x").unwrap();
    let fh = f.open(e.nodeid, libc::O_RDONLY).unwrap().fh;
    f.release(e.nodeid, fh).unwrap();
    assert_eq!(f.read(e.nodeid, fh, 0, 3).unwrap_err(), libc::EBADF);
    assert_eq!(f.fsync(e.nodeid, fh, false).unwrap_err(), libc::EBADF);
}

#[test]
fn tmpfile_is_unnamed_and_usable() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::create_dir(d.path("dir")).unwrap();
    let dir = f.lookup(ROOT, "dir").unwrap().nodeid;
    let (e, o) = match f.tmpfile(dir, libc::O_RDWR, libc::S_IFREG | 0o600) {
        Ok(r) => r,
        Err(e) => panic!("TMPFILE failed with errno {e}"),
    };
    assert_eq!(e.attr.mode & libc::S_IFMT, libc::S_IFREG);
    assert_eq!(e.attr.nlink, 0, "an O_TMPFILE file has no name");
    assert_eq!(f.write(e.nodeid, o.fh, 0, b"tmp").unwrap(), 3);
    assert_eq!(f.read(e.nodeid, o.fh, 0, 10).unwrap(), b"tmp");
    assert_eq!(fs::read_dir(d.path("dir")).unwrap().count(), 0);
    // It can be given a name with LINK.
    let l = f.link(e.nodeid, dir, "named").unwrap();
    assert_eq!(l.attr.nlink, 1);
    assert_eq!(fs::read(d.path("dir/named")).unwrap(), b"tmp");
}

#[test]
fn fallocate_allocates_and_punches_holes() {
    require_root!();
    let (d, mut f) = start(&[]);
    let (e, o) = create_rw(&mut f, "x");
    f.fallocate(e.nodeid, o.fh, 0, 1 << 20, 0).unwrap();
    let m = lstat(&d.path("x"));
    assert_eq!(m.len(), 1 << 20);
    assert!(m.blocks() * 512 >= 1 << 20, "space not allocated");
    f.fallocate(e.nodeid, o.fh, 0, 4 << 20, libc::FALLOC_FL_KEEP_SIZE)
        .unwrap();
    assert_eq!(
        lstat(&d.path("x")).len(),
        1 << 20,
        "KEEP_SIZE changed the size"
    );
    f.write(e.nodeid, o.fh, 0, &[1u8; 8192]).unwrap();
    f.fallocate(
        e.nodeid,
        o.fh,
        0,
        4096,
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
    )
    .unwrap();
    let host = fs::read(d.path("x")).unwrap();
    assert!(host[..4096].iter().all(|&b| b == 0), "hole not punched");
    assert!(host[4096..8192].iter().all(|&b| b == 1));
    assert_eq!(
        f.fallocate(e.nodeid, o.fh, 0, 4096, 0x4000_0000)
            .unwrap_err(),
        libc::EOPNOTSUPP,
        "unknown fallocate mode"
    );
}

#[test]
fn lseek_finds_data_and_holes() {
    require_root!();
    let (d, mut f) = start(&[]);
    {
        let mut h = fs::File::create(d.path("sparse")).unwrap();
        h.seek(SeekFrom::Start(1 << 20)).unwrap();
        h.write_all(&[1u8; 4096]).unwrap();
        h.set_len(4 << 20).unwrap();
    }
    let e = f.lookup(ROOT, "sparse").unwrap();
    let fh = f.open(e.nodeid, libc::O_RDONLY).unwrap().fh;
    let data = f.lseek(e.nodeid, fh, 0, libc::SEEK_DATA).unwrap();
    let hole = f.lseek(e.nodeid, fh, data, libc::SEEK_HOLE).unwrap();
    // What the host says, for filesystems with coarser granularity.
    let host = fs::File::open(d.path("sparse")).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&host);
    // SAFETY: lseek on an fd we own has no memory-safety preconditions.
    let (hd, hh) = unsafe {
        let hd = libc::lseek(fd, 0, libc::SEEK_DATA);
        (hd, libc::lseek(fd, hd, libc::SEEK_HOLE))
    };
    assert_eq!((data as i64, hole as i64), (hd, hh));
    assert!(data <= 1 << 20 && hole > 1 << 20);
    assert_eq!(
        f.lseek(e.nodeid, fh, 5 << 20, libc::SEEK_DATA).unwrap_err(),
        libc::ENXIO,
        "SEEK_DATA past EOF"
    );
    assert_eq!(f.lseek(e.nodeid, fh, 100, libc::SEEK_SET).unwrap(), 100);
}

#[test]
fn copy_file_range_copies_between_files() {
    require_root!();
    let (d, mut f) = start(&[]);
    let data = pattern(100_000, 7);
    fs::write(d.path("src"), &data).unwrap();
    let s = f.lookup(ROOT, "src").unwrap();
    let sfh = f.open(s.nodeid, libc::O_RDONLY).unwrap().fh;
    let (t, to) = create_rw(&mut f, "dst");
    let n = f
        .copy_file_range(s.nodeid, sfh, 1000, t.nodeid, to.fh, 10, 50_000)
        .unwrap();
    assert_eq!(n, 50_000);
    let host = fs::read(d.path("dst")).unwrap();
    assert_eq!(host.len(), 50_010);
    assert!(host[10..] == data[1000..51_000]);
    assert_eq!(
        f.copy_file_range(s.nodeid, sfh, 0, t.nodeid, 999_999, 0, 10)
            .unwrap_err(),
        libc::EBADF,
        "unknown output handle"
    );
}

#[test]
fn write_larger_than_max_write_is_refused() {
    require_root!();
    let (d, mut f) = start(&[]);
    let (e, o) = create_rw(&mut f, "x");
    let data = vec![1u8; abi::MAX_WRITE as usize + 4096];
    let r = f.write(e.nodeid, o.fh, 0, &data);
    assert!(r.is_err(), "a write of MAX_WRITE + 4 KiB succeeded: {r:?}");
    common::assert_alive(&mut f);
    let _ = d;
}

#[test]
fn a_write_with_kill_suidgid_clears_setuid_and_setgid() {
    require_root!();
    let (d, mut f) = start(&[]);
    assert_ne!(
        f.init_flags() & abi::init_flags::HANDLE_KILLPRIV_V2,
        0,
        "HANDLE_KILLPRIV_V2 is on by default"
    );
    fs::write(d.path("x"), b"").unwrap();
    fs::set_permissions(d.path("x"), fs::Permissions::from_mode(0o6755)).unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    let fh = f.open(e, libc::O_WRONLY).unwrap().fh;
    let arg = abi::WriteIn {
        fh,
        offset: 0,
        size: 3,
        write_flags: abi::WRITE_KILL_SUIDGID,
        ..Default::default()
    };
    let r = f.call(opcode::WRITE, e, &[arg.as_slice(), b"abc"], 8);
    assert_eq!(r.hdr.error, 0);
    assert_eq!(lstat(&d.path("x")).mode() & 0o7777, 0o755);
    // A plain write by root keeps the bits.
    fs::set_permissions(d.path("x"), fs::Permissions::from_mode(0o6755)).unwrap();
    f.write(e, fh, 0, b"def").unwrap();
    assert_eq!(lstat(&d.path("x")).mode() & 0o7777, 0o6755);
}

#[test]
fn a_truncating_setattr_with_kill_suidgid_clears_setuid() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("x"), b"abc").unwrap();
    fs::set_permissions(d.path("x"), fs::Permissions::from_mode(0o4755)).unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    let s = abi::SetattrIn {
        valid: abi::setattr_valid::SIZE | abi::setattr_valid::KILL_SUIDGID,
        size: 0,
        ..Default::default()
    };
    f.setattr(e, &s).unwrap();
    let m = lstat(&d.path("x"));
    assert_eq!(m.len(), 0);
    assert_eq!(m.mode() & 0o7777, 0o755);
}

#[test]
fn create_without_write_permission_on_the_parent_is_eacces() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::create_dir(d.path("ro")).unwrap();
    fs::set_permissions(d.path("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    let ro = f.lookup(ROOT, "ro").unwrap().nodeid;
    f.uid = 1000;
    f.gid = 1000;
    let r = f.create(ro, "x", libc::O_CREAT | libc::O_RDWR, libc::S_IFREG | 0o644);
    assert_eq!(r.unwrap_err(), libc::EACCES);
    assert_eq!(
        f.mknod(ro, "p", libc::S_IFIFO | 0o644, 0).unwrap_err(),
        libc::EACCES
    );
    assert_eq!(f.symlink(ro, "l", "x").unwrap_err(), libc::EACCES);
    assert!(fs::read_dir(d.path("ro")).unwrap().next().is_none());
}
