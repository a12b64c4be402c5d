//! Tests of open files: OPEN/CREATE/TMPFILE, READ/WRITE, and the per-handle calls.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::fixture::*;
use crate::fuse::abi::{self, CopyFileRangeIn, CreateIn, ROOT_ID, open_out_flags};
use crate::fuse::filesystem::DirOps;
use crate::fuse::filesystem::EntryOps;
use crate::fuse::filesystem::FileOps;
use crate::passthrough::CachePolicy;

#[test]
fn create_write_read_release() {
    let t = Fixture::new();
    let (e, fh) = t.create(&ROOT, ROOT_ID, "f", 0o644).unwrap();
    assert_eq!(e.inode, t.lookup("f").unwrap().inode);
    assert_eq!(t.write(e.inode, fh, b"hello world", 0, 0).unwrap(), 11);
    assert_eq!(fs::read(t.path("f")).unwrap(), b"hello world");
    assert_eq!(t.read(e.inode, fh, 5, 6).unwrap(), b"world");
    assert_eq!(t.read(e.inode, fh, 100, 0).unwrap(), b"hello world");
    assert_eq!(t.read(e.inode, fh, 10, 100).unwrap(), b"");
    t.fs.flush(&ROOT, e.inode, fh, 0).unwrap();
    t.fs.fsync(&ROOT, e.inode, false, fh).unwrap();
    t.fs.fsync(&ROOT, e.inode, true, fh).unwrap();
    t.fs.release(&ROOT, e.inode, fh, 0, 0, 0).unwrap();
    assert_eq!(errno_of(t.read(e.inode, fh, 5, 0)), libc::EBADF);
    assert_eq!(errno_of(t.fs.flush(&ROOT, e.inode, fh, 0)), libc::EBADF);
    assert!(t.fs.handles.is_empty());
}

#[test]
fn create_exclusive_and_open_errors() {
    let t = Fixture::new();
    fs::write(t.path("f"), b"old").unwrap();
    let args = CreateIn {
        flags: (libc::O_RDWR | libc::O_CREAT | libc::O_EXCL) as u32,
        mode: 0o644,
        umask: 0,
        open_flags: 0,
    };
    assert_eq!(
        errno_of(t.fs.create(&ROOT, ROOT_ID, &cs("f"), &args)),
        libc::EEXIST
    );
    // Without O_EXCL an existing file is opened; O_TRUNC truncates it.
    let args = CreateIn {
        flags: (libc::O_RDWR | libc::O_TRUNC) as u32,
        ..args
    };
    t.fs.create(&ROOT, ROOT_ID, &cs("f"), &args).unwrap();
    assert_eq!(fs::read(t.path("f")).unwrap(), b"");
    assert_eq!(
        errno_of(t.fs.create(&ROOT, 4242, &cs("g"), &args)),
        libc::EBADF
    );
    fs::create_dir(t.path("d")).unwrap();
    let d = t.lookup("d").unwrap();
    assert_eq!(
        errno_of(t.fs.open(&ROOT, d.inode, libc::O_RDWR as u32, 0)),
        libc::EISDIR
    );
}

#[test]
fn open_flags_follow_the_cache_policy() {
    for (cache, flags) in [
        (CachePolicy::Never, open_out_flags::DIRECT_IO),
        (CachePolicy::Metadata, open_out_flags::DIRECT_IO),
        (CachePolicy::Auto, 0),
        (CachePolicy::Always, open_out_flags::KEEP_CACHE),
    ] {
        let t = Fixture::with(|c| c.cache = cache);
        fs::write(t.path("f"), b"").unwrap();
        let f = t.lookup("f").unwrap();
        assert_eq!(
            t.fs.open(&ROOT, f.inode, 0, 0).unwrap().1,
            flags,
            "{cache:?}"
        );
        let dir_flags = t.fs.opendir(&ROOT, ROOT_ID, 0).unwrap().1;
        let want = if cache == CachePolicy::Always {
            open_out_flags::CACHE_DIR
        } else {
            0
        };
        assert_eq!(dir_flags, want);
    }
}

#[test]
fn writeback_opens_write_only_files_read_write_without_append() {
    let t = Fixture::with(|c| c.writeback = true);
    assert!(t.fs.negotiated(abi::init_flags::WRITEBACK_CACHE));
    fs::write(t.path("f"), b"abc").unwrap();
    let f = t.lookup("f").unwrap();
    let (fh, _) =
        t.fs.open(&ROOT, f.inode, (libc::O_WRONLY | libc::O_APPEND) as u32, 0)
            .unwrap();
    // Readable (the kernel fills partial pages), and writes land at the given offset.
    assert_eq!(t.read(f.inode, fh, 3, 0).unwrap(), b"abc");
    t.write(f.inode, fh, b"X", 0, 0).unwrap();
    assert_eq!(fs::read(t.path("f")).unwrap(), b"Xbc");
    let t = Fixture::new();
    fs::write(t.path("f"), b"abc").unwrap();
    let f = t.lookup("f").unwrap();
    let (fh, _) = t.fs.open(&ROOT, f.inode, libc::O_WRONLY as u32, 0).unwrap();
    assert_eq!(errno_of(t.read(f.inode, fh, 3, 0)), libc::EBADF);
}

#[test]
fn tmpfile_is_unnamed_and_writable() {
    let t = Fixture::new();
    let args = CreateIn {
        flags: libc::O_RDWR as u32,
        mode: 0o600,
        umask: 0,
        open_flags: 0,
    };
    let (e, fh, _) = t.fs.tmpfile(&ROOT, ROOT_ID, &args).unwrap();
    assert_eq!(e.attr.st_nlink, 0);
    t.write(e.inode, fh, b"tmp", 0, 0).unwrap();
    assert_eq!(t.read(e.inode, fh, 3, 0).unwrap(), b"tmp");
    assert_eq!(fs::read_dir(t.dir.path()).unwrap().count(), 0);
    // It can be given a name afterwards.
    t.fs.link(&ROOT, e.inode, ROOT_ID, &cs("named")).unwrap();
    assert_eq!(fs::read(t.path("named")).unwrap(), b"tmp");
}

#[test]
fn write_clears_setuid_as_the_kernel_would() {
    let t = Fixture::new();
    assert!(t.fs.negotiated(abi::init_flags::HANDLE_KILLPRIV_V2));
    fs::write(t.path("f"), b"").unwrap();
    fs::set_permissions(t.path("f"), fs::Permissions::from_mode(0o6755)).unwrap();
    let f = t.lookup("f").unwrap();
    let (fh, _) = t.fs.open(&ROOT, f.inode, libc::O_RDWR as u32, 0).unwrap();
    // Without the flag (a privileged writer) the bits stay.
    t.write(f.inode, fh, b"a", 0, 0).unwrap();
    assert_eq!(fs::metadata(t.path("f")).unwrap().mode() & 0o7777, 0o6755);
    t.write(f.inode, fh, b"a", 0, abi::WRITE_KILL_SUIDGID)
        .unwrap();
    assert_eq!(fs::metadata(t.path("f")).unwrap().mode() & 0o7777, 0o755);
    // setgid without group-exec is mandatory locking, not privilege: kept.
    fs::set_permissions(t.path("f"), fs::Permissions::from_mode(0o6744)).unwrap();
    t.write(f.inode, fh, b"a", 0, abi::WRITE_KILL_SUIDGID)
        .unwrap();
    assert_eq!(fs::metadata(t.path("f")).unwrap().mode() & 0o7777, 0o2744);
}

#[test]
fn write_without_killpriv_v2_clears_setuid_for_unprivileged_callers() {
    let t = Fixture::with(|c| c.killpriv_v2 = false);
    fs::write(t.path("f"), b"").unwrap();
    fs::set_permissions(t.path("f"), fs::Permissions::from_mode(0o4777)).unwrap();
    let f = t.lookup("f").unwrap();
    let (fh, _) = t.fs.open(&ROOT, f.inode, libc::O_RDWR as u32, 0).unwrap();
    let mut r = crate::fuse::io::mem::VecReader::new(b"x".to_vec());
    t.fs.write(&user(1000), f.inode, fh, &mut r, 1, 0, 0, 0)
        .unwrap();
    assert_eq!(fs::metadata(t.path("f")).unwrap().mode() & 0o7777, 0o777);
}

#[test]
fn fallocate_lseek_copy_file_range_syncfs() {
    let t = Fixture::new();
    let (a, fa) = t.create(&ROOT, ROOT_ID, "a", 0o644).unwrap();
    t.fs.fallocate(&ROOT, a.inode, fa, 0, 0, 1 << 20).unwrap();
    assert_eq!(fs::metadata(t.path("a")).unwrap().len(), 1 << 20);
    let keep = libc::FALLOC_FL_KEEP_SIZE as u32;
    t.fs.fallocate(&ROOT, a.inode, fa, keep, 1 << 20, 4096)
        .unwrap();
    assert_eq!(fs::metadata(t.path("a")).unwrap().len(), 1 << 20);
    t.write(a.inode, fa, b"data", 8192, 0).unwrap();
    let end =
        t.fs.lseek(&ROOT, a.inode, fa, 0, libc::SEEK_END as u32)
            .unwrap();
    assert_eq!(end, 1 << 20);
    let data =
        t.fs.lseek(&ROOT, a.inode, fa, 0, libc::SEEK_DATA as u32)
            .unwrap();
    assert!(data <= 8192);
    let hole =
        t.fs.lseek(&ROOT, a.inode, fa, 0, libc::SEEK_HOLE as u32)
            .unwrap();
    assert!(hole <= 1 << 20);
    assert_eq!(
        t.fs.lseek(&ROOT, a.inode, fa, 7, libc::SEEK_SET as u32)
            .unwrap(),
        7
    );
    assert_eq!(
        errno_of(t.fs.lseek(&ROOT, a.inode, fa, 0, 99)),
        libc::EINVAL
    );
    let (b, fb) = t.create(&ROOT, ROOT_ID, "b", 0o644).unwrap();
    let args = CopyFileRangeIn {
        fh_in: fa,
        off_in: 8192,
        nodeid_out: b.inode,
        fh_out: fb,
        off_out: 1,
        len: 4,
        flags: 0,
    };
    assert_eq!(t.fs.copy_file_range(&ROOT, a.inode, &args).unwrap(), 4);
    assert_eq!(fs::read(t.path("b")).unwrap(), b"\0data");
    let bad = CopyFileRangeIn {
        fh_out: 999,
        ..args
    };
    assert_eq!(
        errno_of(t.fs.copy_file_range(&ROOT, a.inode, &bad)),
        libc::EBADF
    );
    t.fs.syncfs(&ROOT, ROOT_ID).unwrap();
    t.fs.syncfs(&ROOT, a.inode).unwrap();
}

#[test]
fn open_o_trunc_with_kill_suidgid_clears_setuid() {
    let t = Fixture::new();
    fs::write(t.path("f"), b"data").unwrap();
    fs::set_permissions(t.path("f"), fs::Permissions::from_mode(0o4755)).unwrap();
    let f = t.lookup("f").unwrap();
    let flags = (libc::O_WRONLY | libc::O_TRUNC) as u32;
    t.fs.open(&user(1000), f.inode, flags, abi::OPEN_KILL_SUIDGID)
        .unwrap();
    let m = fs::metadata(t.path("f")).unwrap();
    assert_eq!((m.len(), m.mode() & 0o7777), (0, 0o755));
}

#[test]
fn special_files_are_never_opened_on_the_host() {
    let t = Fixture::new();
    let fifo =
        t.fs.mknod(&ROOT, ROOT_ID, &cs("fifo"), libc::S_IFIFO | 0o644, 0, 0)
            .unwrap();
    // A FIFO opened for reading would block the worker until a writer came.
    assert_eq!(
        errno_of(t.fs.open(&ROOT, fifo.inode, libc::O_RDONLY as u32, 0)),
        libc::ENXIO
    );
    assert!(t.path("fifo").exists(), "the FIFO itself stays");
}
