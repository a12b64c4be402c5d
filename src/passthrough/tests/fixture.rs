//! Shared fixtures for the passthrough unit tests: a filesystem over a fresh temporary
//! directory, contexts, and shortcuts for the common calls.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::path::PathBuf;

use crate::fuse::abi::{self, CreateIn, ROOT_ID, SetattrIn};
use crate::fuse::filesystem::EntryOps;
use crate::fuse::filesystem::FileOps;
use crate::fuse::filesystem::SessionOps;
use crate::fuse::filesystem::{Context, Entry};
use crate::fuse::io::mem::{VecReader, VecWriter};
use crate::oslib::creds;
use crate::passthrough::{Config, PassthroughFs};

/// Root in the guest.
pub const ROOT: Context<'static> = Context {
    uid: 0,
    gid: 0,
    pid: 1,
    supp_gid: None,
    unique: 1,
    wait_budget: None,
};

/// An unprivileged guest user with gid = uid.
pub fn user(uid: u32) -> Context<'static> {
    Context {
        uid,
        gid: uid,
        pid: 2,
        supp_gid: None,
        unique: 2,
        wait_budget: None,
    }
}

/// Whether the tests run as root; tests that need it print why they skip otherwise.
pub fn need_root(test: &str) -> bool {
    let root = creds::geteuid() == 0;
    if !root {
        eprintln!("skipped {test}: needs root (switching credentials, chown)");
    }
    root
}

/// The errno of a failed result.
pub fn errno_of<T: std::fmt::Debug>(r: io::Result<T>) -> i32 {
    r.expect_err("expected an error")
        .raw_os_error()
        .expect("an errno")
}

/// A C string.
pub fn cs(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// A filesystem over a fresh temporary directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub fs: PassthroughFs,
}

impl Fixture {
    /// Default config, INIT with every flag the client could offer.
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// Default config with locks served, INIT with every flag offered.
    pub fn locking() -> Self {
        Self::build(|_| {}, true)
    }

    /// Config changed by `f`, INIT with every flag offered.
    pub fn with(f: impl FnOnce(&mut Config)) -> Self {
        Self::build(f, false)
    }

    fn build(f: impl FnOnce(&mut Config), locks: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config {
            root_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        f(&mut cfg);
        let fs = PassthroughFs::new(cfg, File::open("/proc/self/fd").unwrap())
            .unwrap()
            .with_locks(locks);
        fs.init(u64::MAX).unwrap();
        Self { dir, fs }
    }

    /// Host path of `rel` in the shared directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// LOOKUP in the root.
    pub fn lookup(&self, name: &str) -> io::Result<Entry> {
        self.fs.lookup(&ROOT, ROOT_ID, &cs(name))
    }

    /// CREATE `name` in `parent` as `ctx`, read-write.
    pub fn create(
        &self,
        ctx: &Context,
        parent: u64,
        name: &str,
        mode: u32,
    ) -> io::Result<(Entry, u64)> {
        let args = CreateIn {
            flags: libc::O_RDWR as u32,
            mode: libc::S_IFREG | mode,
            umask: 0o022,
            open_flags: 0,
        };
        self.fs
            .create(ctx, parent, &cs(name), &args)
            .map(|(e, fh, _)| (e, fh))
    }

    /// WRITE `data` at `off`.
    pub fn write(
        &self,
        inode: u64,
        fh: u64,
        data: &[u8],
        off: u64,
        flags: u32,
    ) -> io::Result<usize> {
        let mut r = VecReader::new(data.to_vec());
        self.fs
            .write(&ROOT, inode, fh, &mut r, data.len() as u32, off, flags, 0)
    }

    /// READ up to `size` bytes at `off`.
    pub fn read(&self, inode: u64, fh: u64, size: u32, off: u64) -> io::Result<Vec<u8>> {
        let mut w = VecWriter::new(size as usize);
        let n = self.fs.read(&ROOT, inode, fh, &mut w, size, off, 0)?;
        Ok(w.into_bytes(n))
    }
}

/// A SETATTR request with only `valid` set.
pub fn setattr(valid: u32) -> SetattrIn {
    SetattrIn {
        valid,
        ..SetattrIn::default()
    }
}

/// `abi` re-export for tests.
pub use abi::setattr_valid;
