//! CREATE over an existing FIFO, socket or device node (the CVE-2020-35517 class): a guest
//! that makes a device node with MKNOD and then CREATEs the same name without O_EXCL must
//! never get the host device opened, and a FIFO must never block a worker.

mod common;

use std::fs;
use std::time::Duration;

use common::fuse::{FResult, Fuse, ROOT, cstr};
use common::start;
use vhostfsd::fuse::abi::{self, opcode};
use vm_memory::ByteValued;

/// CREATE of `name` with `flags` (no O_EXCL), waiting at most `timeout`: `None` when the
/// daemon did not answer (a worker is stuck in the host open).
fn create_within(f: &mut Fuse, name: &str, flags: i32, timeout: Duration) -> Option<FResult<()>> {
    let arg = abi::CreateIn {
        flags: flags as u32,
        mode: 0o644,
        umask: 0,
        open_flags: 0,
    };
    let name = cstr(name);
    let hdr = f.header(opcode::CREATE, ROOT, arg.as_slice().len() + name.len());
    let head = f.submit_raw(&[hdr.as_slice(), arg.as_slice(), &name], &[16 + 144]);
    let c = f.q.wait_timeout(head, timeout)?;
    let r = f.decode(hdr.unique, c);
    Some(if r.hdr.error == 0 {
        Ok(())
    } else {
        Err(-r.hdr.error)
    })
}

#[test]
fn create_never_opens_a_device_node_made_by_the_guest() {
    require_root!();
    let (d, mut f) = start(&[]);
    // The guest makes a character device with /dev/null's numbers: opening it on the host
    // would reach the host's device (with a block device: the host's disk).
    let null = libc::makedev(1, 3) as u32;
    f.mknod(ROOT, "dev", libc::S_IFCHR | 0o666, null).unwrap();
    let got = create_within(&mut f, "dev", libc::O_RDWR, Duration::from_secs(10))
        .expect("CREATE of an existing device node got no reply");
    assert_eq!(
        got,
        Err(libc::ENXIO),
        "CREATE without O_EXCL opened a host device node"
    );
    // The node is untouched, and the guest can still CREATE with O_EXCL (EEXIST).
    let st = common::lstat(&d.path("dev"));
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &st.file_type()
    ));
    assert_eq!(
        f.create(ROOT, "dev", libc::O_RDWR | libc::O_EXCL, 0o644)
            .map(drop),
        Err(libc::EEXIST)
    );
    common::assert_alive(&mut f);
}

#[test]
fn create_never_opens_a_fifo() {
    require_root!();
    let (_d, mut f) = start(&[]);
    f.mknod(ROOT, "fifo", libc::S_IFIFO | 0o666, 0).unwrap();
    // O_WRONLY on a FIFO with no reader blocks in open(2): the worker would be stuck.
    let got = create_within(&mut f, "fifo", libc::O_WRONLY, Duration::from_secs(5))
        .expect("CREATE of an existing FIFO blocked the worker");
    assert_eq!(got, Err(libc::ENXIO));
    let got = create_within(&mut f, "fifo", libc::O_RDWR, Duration::from_secs(5))
        .expect("CREATE of an existing FIFO got no reply");
    assert_eq!(got, Err(libc::ENXIO));
    common::assert_alive(&mut f);
}

#[test]
fn create_of_an_existing_regular_file_opens_it() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("f"), b"old contents").unwrap();
    let (e, o) = f.create(ROOT, "f", libc::O_RDWR, 0o644).unwrap();
    assert_eq!(f.read(e.nodeid, o.fh, 0, 100).unwrap(), b"old contents");
    f.release(e.nodeid, o.fh).unwrap();
    // O_TRUNC truncates the existing file, as open(2) would.
    let (e, o) = f
        .create(ROOT, "f", libc::O_RDWR | libc::O_TRUNC, 0o644)
        .unwrap();
    assert_eq!(e.attr.size, 0);
    assert_eq!(fs::read(d.path("f")).unwrap(), b"");
    f.release(e.nodeid, o.fh).unwrap();
    // A directory is EISDIR, as open(O_CREAT) says.
    fs::create_dir(d.path("dir")).unwrap();
    assert_eq!(
        f.create(ROOT, "dir", libc::O_RDWR, 0o644).map(drop),
        Err(libc::EISDIR)
    );
    // A symlink is never followed.
    std::os::unix::fs::symlink("/etc/passwd", d.path("link")).unwrap();
    assert_eq!(
        f.create(ROOT, "link", libc::O_RDWR, 0o644).map(drop),
        Err(libc::ELOOP)
    );
}

#[test]
fn create_of_an_existing_file_checks_the_callers_permission() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("root-only"), b"secret").unwrap();
    fs::set_permissions(
        d.path("root-only"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::chown(d.shared(), Some(1000), Some(1000)).unwrap();
    f.uid = 1000;
    f.gid = 1000;
    assert_eq!(
        f.create(ROOT, "root-only", libc::O_RDONLY, 0o644).map(drop),
        Err(libc::EACCES)
    );
    assert_eq!(
        f.create(ROOT, "root-only", libc::O_WRONLY | libc::O_TRUNC, 0o644)
            .map(drop),
        Err(libc::EACCES)
    );
    assert_eq!(fs::read(d.path("root-only")).unwrap(), b"secret");
}
