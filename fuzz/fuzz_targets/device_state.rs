//! The live-migration state a destination daemon loads (vhost-user device state): it comes
//! from another process through the frontend, so it is treated as hostile.
//!
//! Inputs are raw blobs, blobs with a valid header and a raw filesystem section, or
//! structured states (node ids, lookup counts, file types, paths drawn from a list that
//! includes escapes through `..` and a symlink to outside the share, file handles, open
//! handles with arbitrary flags), encoded by the real encoder. Each is loaded into
//! `Server<PassthroughFs>` over a temporary share.
//!
//! Invariants: no panic; a refused state leaves only the root; nothing outside the share
//! is opened for writing or changed (a sentinel file outside is compared after each input).

#![no_main]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vhostfsd::fuse::filesystem::SessionOps;
use vhostfsd::fuse::server::Server;
use vhostfsd::fuse::server::migration::{MAGIC, VERSION};
use vhostfsd::fuse::state::Encoder;
use vhostfsd::oslib::fs::FileHandle;
use vhostfsd::passthrough::migration::state::{FsState, HandleState, InodeState, Locator};
use vhostfsd::passthrough::{Config, PassthroughFs};

/// Paths a state may name, some of them hostile (refused by the decoder or by the walk).
const PATHS: &[&[u8]] = &[
    b"dir",
    b"dir/file",
    b"file",
    b"escape",
    b"escape/sentinel",
    b"missing",
    b"..",
    b"dir/../../outside/sentinel",
    b"/etc/passwd",
    b"",
    b"dir//file",
];

const TYPES: &[u32] = &[
    libc::S_IFREG,
    libc::S_IFDIR,
    libc::S_IFLNK,
    libc::S_IFIFO,
    0o777,
];

#[derive(Arbitrary, Debug)]
enum Loc {
    Path(u8),
    Handle(Vec<u8>),
    Lost,
}

#[derive(Arbitrary, Debug)]
struct Ino {
    id: u8,
    refcount: u8,
    typ: u8,
    loc: Loc,
    check: Option<Vec<u8>>,
}

#[derive(Arbitrary, Debug)]
struct Hnd {
    fh: u8,
    inode: u8,
    flags: i32,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Section(Vec<u8>),
    Structured {
        next_inode: u8,
        last_handle: u8,
        inodes: Vec<Ino>,
        handles: Vec<Hnd>,
    },
}

struct Env {
    share: PathBuf,
    sentinel: PathBuf,
    server: Server<PassthroughFs>,
}

static ENV: OnceLock<Env> = OnceLock::new();

fn env() -> &'static Env {
    ENV.get_or_init(|| {
        let parent = tempfile::Builder::new()
            .prefix("vhostfsd-fuzz-state-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        let share = parent.join("share");
        fs::create_dir_all(share.join("dir")).unwrap();
        fs::write(share.join("dir/file"), b"data").unwrap();
        fs::write(share.join("file"), b"data").unwrap();
        fs::create_dir(parent.join("outside")).unwrap();
        let sentinel = parent.join("outside/sentinel");
        fs::write(&sentinel, b"must not change").unwrap();
        symlink(parent.join("outside"), share.join("escape")).unwrap();
        let cfg = Config {
            root_dir: share.clone(),
            ..Config::default()
        };
        let proc_self_fd = fs::File::open("/proc/self/fd").expect("/proc/self/fd");
        let fs = PassthroughFs::new(cfg, proc_self_fd).expect("the passthrough filesystem");
        Env {
            share,
            sentinel,
            server: Server::new(Arc::new(fs)),
        }
    })
}

fn header() -> Encoder {
    let mut e = Encoder::new();
    // Not initialized: the state is loaded without re-running INIT.
    e.raw(MAGIC).u32(VERSION).u8(0).u32(0).u64(0);
    e
}

fn handle(b: &[u8]) -> FileHandle {
    let mut v = (b.len().min(128) as u32).to_ne_bytes().to_vec();
    v.extend_from_slice(&[1, 0, 0, 0]);
    v.extend_from_slice(&b[..b.len().min(128)]);
    FileHandle::from_bytes(&v).expect("a well-formed handle")
}

fn blob(input: Input) -> Vec<u8> {
    match input {
        Input::Raw(b) => b,
        Input::Section(s) => {
            let mut e = header();
            e.raw(&s);
            e.finish()
        }
        Input::Structured {
            next_inode,
            last_handle,
            inodes,
            handles,
        } => {
            let state = FsState {
                next_inode: u64::from(next_inode),
                last_handle: u64::from(last_handle),
                inodes: inodes
                    .into_iter()
                    .take(32)
                    .map(|i| InodeState {
                        id: u64::from(i.id),
                        refcount: u64::from(i.refcount),
                        file_type: TYPES[usize::from(i.typ) % TYPES.len()],
                        locator: match i.loc {
                            Loc::Path(p) => {
                                Locator::Path(PATHS[usize::from(p) % PATHS.len()].to_vec())
                            }
                            Loc::Handle(h) => Locator::Handle(handle(&h)),
                            Loc::Lost => Locator::Lost("lost".into()),
                        },
                        check: i.check.map(|h| handle(&h)),
                    })
                    .collect(),
                handles: handles
                    .into_iter()
                    .take(32)
                    .map(|h| HandleState {
                        fh: u64::from(h.fh),
                        inode: u64::from(h.inode),
                        flags: h.flags,
                    })
                    .collect(),
            };
            let mut e = header();
            e.raw(&state.encode());
            e.finish()
        }
    }
}

fuzz_target!(|input: Input| {
    let env = env();
    let b = blob(input);
    let _ = env.server.load_state(&b);
    env.server.fs().destroy();
    assert_eq!(
        fs::read(&env.sentinel).expect("the sentinel"),
        b"must not change",
        "a state changed a file outside the share"
    );
    assert_eq!(fs::read(env.share.join("file")).unwrap(), b"data");
});
