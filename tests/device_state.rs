//! Live migration of the device state (DEVICE_STATE: SET_DEVICE_STATE_FD and
//! CHECK_DEVICE_STATE): the source's state loaded into a second daemon on the same
//! directory, which then serves the same node ids and file handles; corrupt states
//! refused; what cannot be carried handled per `--migration-on-error`.

mod common;

use std::fs;

use common::daemon::{Daemon, DaemonBuilder};
use common::fuse::{Fuse, ROOT};
use common::migration::{connect, load, save};
use vhostfsd::fuse::abi::{self, opcode};
use vm_memory::ByteValued;

/// A destination daemon on `src`'s shared directory.
fn destination(src: &Daemon, args: &[&str]) -> Daemon {
    DaemonBuilder::new()
        .shared_dir(src.shared())
        .args(args)
        .start()
}

/// What the guest holds on the source.
struct Held {
    dir: u64,
    file: u64,
    fh: u64,
    dir_fh: u64,
}

/// Looks up `dir` (twice) and `dir/file`, opens the file read-write and the directory.
fn hold(f: &mut Fuse) -> Held {
    let dir = f.lookup(ROOT, "dir").unwrap().nodeid;
    assert_eq!(f.lookup(ROOT, "dir").unwrap().nodeid, dir);
    let file = f.lookup(dir, "file").unwrap().nodeid;
    let fh = f.open(file, libc::O_RDWR).unwrap().fh;
    let dir_fh = f.opendir(dir).unwrap().fh;
    Held {
        dir,
        file,
        fh,
        dir_fh,
    }
}

fn populate(d: &Daemon) {
    fs::create_dir(d.path("dir")).unwrap();
    fs::write(d.path("dir/file"), b"carried across").unwrap();
    fs::write(d.path("dir/other"), b"x").unwrap();
}

/// Migrates `f`'s session from `src` to a new daemon started with `args`.
/// A source daemon started with `args` on the populated share, and a session that holds
/// the usual inode, handles and directory ([`hold`]).
fn held_source(args: &[&str]) -> (Daemon, Fuse, Held) {
    let src = Daemon::start(args);
    populate(&src);
    let mut f = Fuse::from_device(connect(&src));
    let h = hold(&mut f);
    (src, f, h)
}

fn migrate(f: &Fuse, src: &Daemon, args: &[&str]) -> (Daemon, Fuse) {
    let blob = save(&f.dev).expect("SAVE the source's state");
    let dst = destination(src, args);
    let dev = connect(&dst);
    load(&dev, &blob).expect("LOAD the state into the destination");
    let g = Fuse::resumed(dev, f.init);
    (dst, g)
}

#[test]
fn the_destination_serves_the_same_node_ids_and_handles() {
    require_root!();
    let (src, f, h) = held_source(&[]);
    let (_dst, mut g) = migrate(&f, &src, &[]);

    // The handle reads and writes on the destination, with no INIT and no new lookup.
    assert_eq!(g.read(h.file, h.fh, 0, 100).unwrap(), b"carried across");
    g.write(h.file, h.fh, 0, b"CARRIED").unwrap();
    assert_eq!(
        fs::read(src.path("dir/file")).unwrap(),
        b"CARRIED across",
        "the write reached the shared directory"
    );
    assert_eq!(g.getattr(h.dir).unwrap().mode & libc::S_IFMT, libc::S_IFDIR);
    let names: Vec<String> = g
        .readdir(h.dir, h.dir_fh, 0, 4096)
        .unwrap()
        .iter()
        .map(|e| e.name_str().to_owned())
        .collect();
    assert!(names.contains(&"other".to_owned()), "{names:?}");
    // Lookups of held inodes find the same node ids; new ones get fresh ids.
    assert_eq!(g.lookup(h.dir, "file").unwrap().nodeid, h.file);
    let other = g.lookup(h.dir, "other").unwrap().nodeid;
    assert!(other > h.file, "node id {other} reused");
    let fh2 = g.open(other, libc::O_RDONLY).unwrap().fh;
    assert!(fh2 > h.dir_fh, "handle {fh2} reused");
    // Lookup counts were carried: `dir` was looked up twice.
    g.forget(h.dir, 1);
    assert!(g.getattr(h.dir).is_ok(), "one lookup of dir is left");
    g.forget(h.dir, 1);
    assert_eq!(g.getattr(h.dir).unwrap_err(), libc::EBADF);
    g.release(h.file, h.fh).unwrap();
    assert_eq!(g.read(h.file, h.fh, 0, 10).unwrap_err(), libc::EBADF);
}

#[test]
fn a_corrupt_or_truncated_state_is_refused_and_the_daemon_goes_on() {
    require_root!();
    let (src, f, _h) = held_source(&[]);
    let blob = save(&f.dev).unwrap();
    let dst = destination(&src, &[]);
    let mut bad: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"not a vhostfsd state".to_vec(),
        blob[..blob.len() / 2].to_vec(),
        blob[..blob.len() - 1].to_vec(),
        [&blob[..], b"x"].concat(),
    ];
    let mut other_version = blob.clone();
    other_version[8] = 99;
    bad.push(other_version);
    // A path that leaves the shared directory: replace "dir" in the blob by "..\0".
    let pos = blob.windows(3).position(|w| w == b"dir").unwrap();
    let mut escape = blob.clone();
    escape[pos..pos + 3].copy_from_slice(b"../");
    bad.push(escape);
    for b in &bad {
        let dev = connect(&dst);
        assert!(
            load(&dev, b).is_err(),
            "a bad state of {} bytes was accepted",
            b.len()
        );
        drop(dev);
    }
    // The daemon still serves a fresh frontend, and a good state still loads.
    let mut g = Fuse::start(&dst);
    assert!(g.getattr(ROOT).is_ok());
    drop(g);
    let dev = connect(&dst);
    load(&dev, &blob).expect("the good state");
}

#[test]
fn a_file_deleted_while_open_fails_the_migration_or_errors_for_the_guest() {
    require_root!();
    let (src, f, h) = held_source(&[]);
    fs::remove_file(src.path("dir/file")).unwrap();
    let blob = save(&f.dev).unwrap();

    // --migration-on-error=abort (the default): the destination refuses the state.
    let dst = destination(&src, &[]);
    let dev = connect(&dst);
    assert!(
        load(&dev, &blob).is_err(),
        "a deleted open file was carried"
    );
    assert!(dst.log().contains("node"), "the log names the node");
    drop(dev);

    // guest-error: the rest is carried, the lost file answers EBADF.
    let dst = destination(&src, &["--migration-on-error", "guest-error"]);
    let dev = connect(&dst);
    load(&dev, &blob).expect("guest-error finishes the migration");
    let mut g = Fuse::resumed(dev, f.init);
    assert_eq!(g.read(h.file, h.fh, 0, 10).unwrap_err(), libc::EBADF);
    assert_eq!(g.getattr(h.file).unwrap_err(), libc::EBADF);
    assert!(g.getattr(h.dir).is_ok());
    assert!(g.readdir(h.dir, h.dir_fh, 0, 4096).is_ok());
}

#[test]
fn find_paths_searches_the_share_for_a_file_whose_name_was_unlinked() {
    require_root!();
    // The guest opened dir/file; a third party linked it elsewhere, then removed the name
    // the daemon knew. /proc/self/fd names it "dir/file (deleted)", but the file still has
    // a path: the source finds it by searching the shared directory, as virtiofsd does.
    let src = Daemon::start(&[]);
    populate(&src);
    fs::create_dir_all(src.path("elsewhere/deeper")).unwrap();
    let mut f = Fuse::from_device(connect(&src));
    let h = hold(&mut f);
    fs::hard_link(src.path("dir/file"), src.path("elsewhere/deeper/link")).unwrap();
    fs::remove_file(src.path("dir/file")).unwrap();
    let (dst, mut g) = migrate(&f, &src, &[]);
    drop(f);
    assert_eq!(g.read(h.file, h.fh, 0, 100).unwrap(), b"carried across");
    g.write(h.file, h.fh, 0, b"CARRIED").unwrap();
    assert_eq!(
        fs::read(dst.path("elsewhere/deeper/link")).unwrap(),
        b"CARRIED across"
    );
    assert_eq!(g.getattr(h.file).unwrap().nlink, 1);
}

#[test]
fn a_path_through_a_symlink_on_the_destination_is_not_followed() {
    require_root!();
    let (src, f, _h) = held_source(&[]);
    let blob = save(&f.dev).unwrap();
    // Between save and load, "dir" becomes a symlink to a directory outside the share
    // that holds a "file" too.
    let outside = src.outside().join("elsewhere");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("file"), b"outside the share").unwrap();
    fs::rename(src.path("dir"), src.outside().join("moved")).unwrap();
    std::os::unix::fs::symlink(&outside, src.path("dir")).unwrap();
    let dst = destination(&src, &[]);
    let dev = connect(&dst);
    assert!(
        load(&dev, &blob).is_err(),
        "the destination followed a symlink out of the shared directory"
    );
}

#[test]
fn file_handles_mode_carries_a_file_deleted_while_open() {
    require_root!();
    let (src, f, h) = held_source(&["--migration-mode", "file-handles"]);
    fs::remove_file(src.path("dir/file")).unwrap();
    let (_dst, mut g) = migrate(&f, &src, &[]);
    // The source frontend goes away and the source daemon closes its fds: the destination
    // opened the unlinked file by its handle and holds it itself.
    drop(f);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(g.read(h.file, h.fh, 0, 100).unwrap(), b"carried across");
}

#[test]
fn a_file_replaced_during_migration_is_caught_with_verify_handles() {
    require_root!();
    let (src, f, _h) = held_source(&["--migration-verify-handles"]);
    let blob = save(&f.dev).unwrap();
    // A third party replaces the file between switch-over and the destination's open.
    fs::rename(src.path("dir/other"), src.path("dir/file")).unwrap();
    let dst = destination(&src, &[]);
    let dev = connect(&dst);
    assert!(
        load(&dev, &blob).is_err(),
        "the destination opened the replacement as if it were the guest's file"
    );
    drop(dev);
    // Without the check the replacement is taken for the guest's file: the hazard the
    // option exists for (docs/migration.md).
    let src2 = Daemon::start(&[]);
    populate(&src2);
    let mut f = Fuse::from_device(connect(&src2));
    let h = hold(&mut f);
    let blob = save(&f.dev).unwrap();
    fs::rename(src2.path("dir/other"), src2.path("dir/file")).unwrap();
    let dst = destination(&src2, &[]);
    let dev = connect(&dst);
    load(&dev, &blob).expect("find-paths alone cannot tell");
    let mut g = Fuse::resumed(dev, f.init);
    assert_eq!(g.read(h.file, h.fh, 0, 10).unwrap(), b"x");
}

#[test]
fn guest_held_locks_refuse_the_migration_on_the_source() {
    require_root!();
    let (src, mut f, h) = held_source(&["--thread-pool-size", "2"]);
    let arg = common::fuse::write_lock(h.fh, 7, 0, 10);
    f.call_ok(opcode::SETLK, h.file, &[arg.as_slice()], 0)
        .expect("SETLK");
    assert!(
        save(&f.dev).is_err(),
        "a guest-held lock was dropped silently"
    );
    assert!(src.log().contains("locks"), "the log says why");
    // The guest goes on on the source.
    assert_eq!(f.read(h.file, h.fh, 0, 7).unwrap(), b"carried");
}

#[test]
fn options_that_change_the_session_are_refused() {
    require_root!();
    let (src, f, _h) = held_source(&["--thread-pool-size", "2"]);
    let blob = save(&f.dev).unwrap();
    // Without a thread pool the destination would not serve the locks the guest agreed on.
    let dst = destination(&src, &[]);
    let dev = connect(&dst);
    assert!(load(&dev, &blob).is_err());
    assert!(dst.log().contains("options"), "{}", dst.log());
}

#[test]
fn dax_mappings_refuse_the_migration_on_the_source() {
    use common::frontend::{Device, PROTOCOL_WANTED};
    use common::fuse::INIT_FLAGS;
    use common::shmem::Vmm;
    use vhost::vhost_user::VhostUserProtocolFeatures;

    require_root!();
    let src = Daemon::start(&["--dax-window", "64M"]);
    populate(&src);
    fs::write(src.path("big"), vec![7u8; 2 << 20]).unwrap();
    let mut vmm = Vmm::new(64 << 20);
    let dev = Device::connect_vmm_acking(
        src.socket(),
        1,
        &mut vmm,
        PROTOCOL_WANTED | VhostUserProtocolFeatures::DEVICE_STATE,
    );
    let dax = INIT_FLAGS | abi::init_flags::MAP_ALIGNMENT | abi::init_flags::HAS_INODE_DAX;
    let mut f = Fuse::from_device_with(dev, dax);
    let node = f.lookup(ROOT, "big").unwrap().nodeid;
    f.setupmapping(node, u64::MAX, 0, 2 << 20, abi::SETUPMAPPING_FLAG_READ, 0)
        .unwrap();
    assert!(save(&f.dev).is_err(), "a DAX mapping was dropped silently");
    assert!(src.log().contains("DAX"), "the log says why");
    // Once the guest unmapped, the state saves.
    f.removemapping(&[(0, 2 << 20)]).unwrap();
    save(&f.dev).expect("no mapping left");
}
