//! Structure-aware FUSE requests through `Server<PassthroughFs>` over a temporary share.
//!
//! Each input is a session: INIT, then up to 16 requests whose opcode, node ids, file
//! handles, names, argument bytes and header lengths are chosen by the fuzzer, with node ids
//! and handles drawn mostly from those the server handed out earlier in the session.
//!
//! Invariants: no panic; every reply written has `OutHeader.len` equal to the bytes written,
//! `error` in `-4095..=0` (and no payload with an error), and the request's `unique`;
//! nothing outside the share changes (a sentinel file and the listing of the share's
//! parent are compared after every input).
//!
//! With `dax` set, the filesystem serves SETUPMAPPING/REMOVEMAPPING through a window that
//! enforces QEMU 11.1's rules (in the window, no overlap, unmaps matching a map exactly):
//! whatever the guest sends, the daemon must never ask the VMM for a map it would refuse.
//!
//! Host safety, not protocol restrictions: MKNOD gets `rdev` 0 (no host device nodes),
//! SETLKW becomes SETLK (a single
//! thread would wait on itself forever), FALLOCATE and COPY_FILE_RANGE lengths are capped
//! at 1 MiB (no filling the host disk).

#![no_main]

use std::fs;
use std::io;
use std::mem::size_of;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vhostfsd::fuse::abi::{self, opcode};
use vhostfsd::fuse::dax::{DaxWindow, MapRequest};
use vhostfsd::fuse::io::Writer;
use vhostfsd::fuse::io::mem::{VecReader, VecWriter};
use vhostfsd::fuse::server::Server;
use vhostfsd::fuse::testing::RequestBuilder;
use vhostfsd::passthrough::{CachePolicy, Config, DaxPolicy, InodeFileHandles, PassthroughFs};
use vm_memory::ByteValued;

/// Names the fixture holds (and a few it does not).
const FIXTURE_NAMES: &[&str] = &["f", "d", "g", "esc", "abs", "up", "new", "x"];

#[derive(Arbitrary, Debug)]
struct Input {
    config: FsConfig,
    init_flags: u64,
    init_minor: Option<u8>,
    requests: Vec<Request>,
}

#[derive(Arbitrary, Debug)]
struct FsConfig {
    /// A DAX window, and the `--dax-policy` (index into the policies).
    dax: Option<u8>,
    xattr: bool,
    readonly: bool,
    writeback: bool,
    killpriv_v2: bool,
    cache: u8,
    /// Inodes held as file handles (`--inode-file-handles=prefer`) rather than fds.
    file_handles: bool,
    /// `--inode-fd-cache`, taken modulo 4: a cache that is often full, or off.
    inode_fd_cache: u8,
}

#[derive(Arbitrary, Debug)]
enum Opcode {
    Known(u8),
    Raw(u32),
}

#[derive(Arbitrary, Debug)]
enum Node {
    Seen(u8),
    Root,
    Zero,
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
enum Fh {
    Seen(u8),
    Zero,
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
enum Caller {
    Root,
    User,
    Nobody,
    Raw(u32, u32),
}

#[derive(Arbitrary, Debug)]
enum Name {
    Fixture(u8),
    Dot,
    DotDot,
    /// These bytes with a '/' at the given position.
    Slash(u8, Vec<u8>),
    /// Any bytes, NUL-terminated (so an embedded NUL cuts the name short).
    Bytes(Vec<u8>),
    Empty,
    /// A name of this many 'a's (beyond NAME_MAX for large values).
    Long(u16),
    /// Bytes without the terminating NUL.
    Unterminated(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Len {
    Exact,
    Delta(i8),
    Raw(u32),
}

#[derive(Arbitrary, Debug)]
enum Ext {
    None,
    Groups(Vec<u32>),
    Raw(Vec<u8>),
    /// `total_extlen` that disagrees with the bytes appended.
    ExtlenOnly(u16),
}

#[derive(Arbitrary, Debug)]
enum Space {
    Full,
    Header,
    Tiny(u8),
    Sized(u16),
}

#[derive(Arbitrary, Debug)]
struct Request {
    opcode: Opcode,
    node: Node,
    /// A second node id (RENAME newdir, LINK oldnodeid, COPY_FILE_RANGE nodeid_out).
    node2: Node,
    fh: Fh,
    fh2: Fh,
    caller: Caller,
    /// Keep `args` as they are (possibly short) instead of sizing them for the opcode.
    raw_args: bool,
    args: Vec<u8>,
    names: Vec<Name>,
    /// WRITE data, SETXATTR value, SYMLINK target, BATCH_FORGET entries.
    payload: Vec<u8>,
    len: Len,
    ext: Ext,
    space: Space,
    unique: u64,
}

/// Argument struct size of `op`, if it has a fixed one.
fn arg_size(op: u32) -> Option<usize> {
    use opcode::*;
    Some(match op {
        FORGET | BATCH_FORGET | MKDIR | RENAME | LINK | OPEN | OPENDIR | ACCESS | GETXATTR
        | LISTXATTR | INTERRUPT | SYNCFS => 8,
        GETATTR | MKNOD | RENAME2 | FSYNC | FSYNCDIR | CREATE | TMPFILE | SETXATTR => 16,
        RELEASE | RELEASEDIR | FLUSH | LSEEK => 24,
        FALLOCATE => 32,
        READ | WRITE | READDIR | READDIRPLUS | SETUPMAPPING => 40,
        GETLK | SETLK | SETLKW => 48,
        COPY_FILE_RANGE | COPY_FILE_RANGE_64 => 56,
        SETATTR => 88,
        INIT => size_of::<abi::InitIn>(),
        REMOVEMAPPING => 4,
        _ => return None,
    })
}

/// Offset of the file handle in the arguments of `op`.
fn fh_offset(op: u32) -> Option<usize> {
    use opcode::*;
    match op {
        GETATTR | SETATTR => Some(8),
        READ | WRITE | RELEASE | RELEASEDIR | FLUSH | FSYNC | FSYNCDIR | READDIR | READDIRPLUS
        | GETLK | SETLK | SETLKW | FALLOCATE | LSEEK | SETUPMAPPING | COPY_FILE_RANGE
        | COPY_FILE_RANGE_64 => Some(0),
        _ => None,
    }
}

fn put_u32(body: &mut [u8], off: usize, v: u32) {
    if let Some(b) = body.get_mut(off..off + 4) {
        b.copy_from_slice(&v.to_ne_bytes());
    }
}

fn put_u64(body: &mut [u8], off: usize, v: u64) {
    if let Some(b) = body.get_mut(off..off + 8) {
        b.copy_from_slice(&v.to_ne_bytes());
    }
}

fn get_u32(body: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(body.get(off..off + 4)?.try_into().ok()?))
}

fn get_u64(body: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(body.get(off..off + 8)?.try_into().ok()?))
}

/// What the session has seen: node ids and file handles the server handed out.
struct Seen {
    nodes: Vec<u64>,
    fhs: Vec<u64>,
}

impl Seen {
    fn node(&self, n: &Node) -> u64 {
        match *n {
            Node::Seen(i) => self.nodes[usize::from(i) % self.nodes.len()],
            Node::Root => abi::ROOT_ID,
            Node::Zero => 0,
            Node::Raw(v) => v,
        }
    }

    fn fh(&self, f: &Fh) -> u64 {
        match *f {
            Fh::Seen(i) if !self.fhs.is_empty() => self.fhs[usize::from(i) % self.fhs.len()],
            Fh::Seen(_) | Fh::Zero => 0,
            Fh::Raw(v) => v,
        }
    }
}

fn name_bytes(n: &Name) -> Vec<u8> {
    let mut v = match n {
        Name::Fixture(i) => FIXTURE_NAMES[usize::from(*i) % FIXTURE_NAMES.len()]
            .as_bytes()
            .to_vec(),
        Name::Dot => b".".to_vec(),
        Name::DotDot => b"..".to_vec(),
        Name::Slash(at, b) => {
            let mut b = b.clone();
            b.insert(usize::from(*at) % (b.len() + 1), b'/');
            b
        }
        Name::Bytes(b) => b.clone(),
        Name::Empty => Vec::new(),
        Name::Long(n) => vec![b'a'; usize::from(*n % 1024)],
        Name::Unterminated(b) => return b.clone(),
    };
    v.push(0);
    v
}

/// The request bytes for `r`, with the host-safety rewrites applied; returns the opcode too.
fn build(r: &Request, seen: &Seen) -> (u32, Vec<u8>) {
    let mut op = match r.opcode {
        Opcode::Known(i) => opcode::ALL[usize::from(i) % opcode::ALL.len()].0,
        Opcode::Raw(v) => v,
    };
    if op == opcode::SETLKW {
        op = opcode::SETLK;
    }
    let mut args = r.args.clone();
    let size = arg_size(op);
    if !r.raw_args {
        if let Some(size) = size {
            args.resize(size, 0);
        }
        if let Some(off) = fh_offset(op) {
            put_u64(&mut args, off, seen.fh(&r.fh));
        }
        match op {
            opcode::RENAME | opcode::RENAME2 | opcode::LINK => {
                put_u64(&mut args, 0, seen.node(&r.node2));
            }
            opcode::COPY_FILE_RANGE | opcode::COPY_FILE_RANGE_64 => {
                put_u64(&mut args, 16, seen.node(&r.node2));
                put_u64(&mut args, 24, seen.fh(&r.fh2));
            }
            opcode::WRITE => put_u32(&mut args, 16, r.payload.len() as u32),
            opcode::SETXATTR => put_u32(&mut args, 0, r.payload.len() as u32),
            _ => {}
        }
    }
    let mut body = args;
    if op == opcode::BATCH_FORGET && !r.raw_args {
        let n = (r.payload.len() / 2).min(8);
        put_u32(&mut body, 0, n as u32);
        for i in 0..n {
            let one = abi::ForgetOne {
                nodeid: seen.node(&Node::Seen(r.payload[2 * i])),
                nlookup: u64::from(r.payload[2 * i + 1] % 4),
            };
            body.extend_from_slice(one.as_slice());
        }
    } else {
        for n in r.names.iter().take(2) {
            body.extend_from_slice(&name_bytes(n));
        }
        body.extend_from_slice(&r.payload);
    }
    // Host safety (see the top of the file): the body, wherever its bytes came from.
    match op {
        // FIFOs stay: the daemon must never open one (OPEN, CREATE without O_EXCL over
        // it, xattrs, SETATTR, locks); a regression blocks in open(2), which libFuzzer
        // reports as a timeout.
        opcode::MKNOD => put_u32(&mut body, 4, 0),
        opcode::FALLOCATE => {
            if let Some(len) = get_u64(&body, 16) {
                put_u64(&mut body, 16, len % (1 << 20));
            }
        }
        opcode::COPY_FILE_RANGE | opcode::COPY_FILE_RANGE_64 => {
            if let Some(len) = get_u64(&body, 40) {
                put_u64(&mut body, 40, len % (1 << 20));
            }
        }
        _ => {}
    }
    let (ext, extlen) = match &r.ext {
        Ext::None => (Vec::new(), 0),
        Ext::Groups(g) => {
            let g = &g[..g.len().min(4)];
            let mut e = Vec::new();
            let size = (8 + 4 + 4 * g.len()).next_multiple_of(8);
            e.extend_from_slice(&(size as u32).to_ne_bytes());
            e.extend_from_slice(&abi::EXT_GROUPS.to_ne_bytes());
            e.extend_from_slice(&(g.len() as u32).to_ne_bytes());
            for gid in g {
                e.extend_from_slice(&gid.to_ne_bytes());
            }
            e.resize(size, 0);
            let n = (e.len() / 8) as u16;
            (e, n)
        }
        Ext::Raw(b) => {
            let mut e = b.clone();
            e.resize(b.len().next_multiple_of(8), 0);
            let n = (e.len() / 8) as u16;
            (e, n)
        }
        Ext::ExtlenOnly(n) => (Vec::new(), *n),
    };
    body.extend_from_slice(&ext);
    let exact = (size_of::<abi::InHeader>() + body.len()) as u32;
    let len = match r.len {
        Len::Exact => exact,
        Len::Delta(d) => exact.wrapping_add_signed(i32::from(d)),
        Len::Raw(v) => v,
    };
    let (uid, gid) = match r.caller {
        Caller::Root => (0, 0),
        Caller::User => (1000, 1000),
        Caller::Nobody => (65534, 65534),
        Caller::Raw(u, g) => (u, g),
    };
    // The builder's header, then the lengths this input asks for (right or wrong).
    let mut h = RequestBuilder::new(op, seen.node(&r.node))
        .unique(r.unique)
        .caller(uid, gid, 4242)
        .header(body.len(), 0);
    h.len = len;
    h.total_extlen = extlen;
    (op, [h.as_slice(), &body].concat())
}

/// Sends `req` with `space` bytes of reply space; checks the reply and returns its bytes.
fn send(server: &Server<PassthroughFs>, req: Vec<u8>, space: usize) -> Vec<u8> {
    let unique = abi::InHeader::from_slice(&req[..size_of::<abi::InHeader>()])
        .map(|h| h.unique)
        .unwrap_or_default();
    let mut head = VecWriter::new(space);
    let w = head.split_at(0).expect("an empty head");
    let n = match server.handle_message(VecReader::new(req), w) {
        Ok(n) => n,
        // Not even an error reply fitted: the transport completes with no data.
        Err(_) => return Vec::new(),
    };
    assert!(n <= space, "{n} reply bytes in {space} bytes of space");
    let bytes = head.into_bytes(n);
    if n == 0 {
        return bytes;
    }
    let out = abi::OutHeader::from_slice(&bytes[..size_of::<abi::OutHeader>()])
        .expect("a reply starts with an OutHeader");
    assert_eq!(
        out.len as usize, n,
        "OutHeader.len disagrees with bytes written"
    );
    assert!(
        (-4095..=0).contains(&out.error),
        "bad error {} in reply",
        out.error
    );
    assert!(
        out.error == 0 || n == size_of::<abi::OutHeader>(),
        "an error reply with a payload"
    );
    assert_eq!(out.unique, unique, "reply to the wrong request");
    bytes
}

/// Remembers node ids and handles a successful reply hands out.
fn learn(seen: &mut Seen, op: u32, reply: &[u8]) {
    let base = size_of::<abi::OutHeader>();
    if reply.len() < base || get_u32(reply, 4) != Some(0) {
        return;
    }
    match op {
        opcode::LOOKUP | opcode::MKNOD | opcode::MKDIR | opcode::SYMLINK | opcode::LINK => {
            seen.nodes.extend(get_u64(reply, base));
        }
        opcode::CREATE | opcode::TMPFILE => {
            seen.nodes.extend(get_u64(reply, base));
            seen.fhs
                .extend(get_u64(reply, base + size_of::<abi::EntryOut>()));
        }
        opcode::OPEN | opcode::OPENDIR => seen.fhs.extend(get_u64(reply, base)),
        _ => {}
    }
}

/// The parent directory holding `share/` and `outside/sentinel`, removed at exit.
struct Env {
    parent: PathBuf,
    share: PathBuf,
    sentinel: PathBuf,
    /// What must never change: the sentinel's metadata and content, and both listings.
    snapshot: String,
}

static ENV: OnceLock<Env> = OnceLock::new();

extern "C" fn remove_env() {
    if let Some(env) = ENV.get() {
        let _ = fs::remove_dir_all(&env.parent);
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("listing a fuzz directory")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

fn snapshot(parent: &Path, sentinel: &Path) -> String {
    let m = fs::symlink_metadata(sentinel).expect("the sentinel is there");
    let content = fs::read(sentinel).expect("the sentinel is readable");
    let outside = fs::symlink_metadata(parent.join("outside")).expect("outside/ is there");
    format!(
        "sentinel ino {} mode {:o} uid {} gid {} nlink {} size {} mtime {}.{} ctime {}.{} \
         content {:?}; outside/ mode {:o} mtime {}.{} {:?}; parent {:?}",
        m.ino(),
        m.mode(),
        m.uid(),
        m.gid(),
        m.nlink(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        content,
        outside.mode(),
        outside.mtime(),
        outside.mtime_nsec(),
        listing(&parent.join("outside")),
        listing(parent),
    )
}

fn env() -> &'static Env {
    ENV.get_or_init(|| {
        let parent = tempfile::Builder::new()
            .prefix("vhostfsd-fuzz-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        let share = parent.join("share");
        fs::create_dir(parent.join("outside")).unwrap();
        let sentinel = parent.join("outside/sentinel");
        fs::write(&sentinel, b"must not change").unwrap();
        fs::create_dir(&share).unwrap();
        // SAFETY: `remove_env` is an `extern "C" fn()` that only touches the `OnceLock`,
        // which lives for the whole process.
        unsafe { libc::atexit(remove_env) };
        let snapshot = snapshot(&parent, &sentinel);
        Env {
            parent,
            share,
            sentinel,
            snapshot,
        }
    })
}

/// A fresh share: a file, a directory, and symlinks that lead outside it.
fn reset_share(env: &Env) -> io::Result<()> {
    match fs::remove_dir_all(&env.share) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::create_dir(&env.share)?;
    fs::write(env.share.join("f"), b"hello, fuzzer")?;
    fs::create_dir(env.share.join("d"))?;
    fs::write(env.share.join("d/g"), b"")?;
    symlink("../outside/sentinel", env.share.join("esc"))?;
    symlink(&env.sentinel, env.share.join("abs"))?;
    symlink("..", env.share.join("up"))?;
    Ok(())
}

/// A DAX window with QEMU 11.1's rules: a violation is a bug in the daemon's checks.
struct StrictWindow {
    maps: Mutex<Vec<(u64, u64)>>,
}

/// The fuzzed window: small, so guest offsets hit its edges.
const WINDOW: u64 = 16 << 20;

impl DaxWindow for StrictWindow {
    fn size(&self) -> u64 {
        WINDOW
    }
    fn epoch(&self) -> u64 {
        0
    }
    fn map(&self, r: &MapRequest<'_>) -> io::Result<()> {
        let (off, len) = (r.window_offset, r.len);
        assert!(
            len > 0 && off.checked_add(len).is_some_and(|e| e <= WINDOW),
            "map out of the window"
        );
        assert!(off % 4096 == 0 && len % 4096 == 0, "misaligned map");
        let mut maps = self.maps.lock().unwrap();
        assert!(
            !maps.iter().any(|&(o, l)| off < o + l && o < off + len),
            "map overlapping a mapping: {off:#x}+{len:#x} over {maps:x?}"
        );
        maps.push((off, len));
        Ok(())
    }
    fn unmap(&self, off: u64, len: u64) -> io::Result<()> {
        let mut maps = self.maps.lock().unwrap();
        let i = maps
            .iter()
            .position(|&m| m == (off, len))
            .unwrap_or_else(|| panic!("unmap of no mapping: {off:#x}+{len:#x} in {maps:x?}"));
        maps.remove(i);
        Ok(())
    }
}

fn request(op: u32, nodeid: u64, body: &[u8]) -> Vec<u8> {
    RequestBuilder::new(op, nodeid)
        .unique(1)
        .build(&[body], &[])
}

fn run(input: &Input) {
    let env = env();
    reset_share(env).expect("resetting the share");
    let cache = match input.config.cache % 4 {
        0 => CachePolicy::Never,
        1 => CachePolicy::Metadata,
        2 => CachePolicy::Auto,
        _ => CachePolicy::Always,
    };
    let cfg = Config {
        root_dir: env.share.clone(),
        cache,
        timeout: cache.timeout(),
        xattr: input.config.xattr,
        readonly: input.config.readonly,
        writeback: input.config.writeback,
        killpriv_v2: input.config.killpriv_v2,
        inode_file_handles: if input.config.file_handles {
            InodeFileHandles::Prefer
        } else {
            InodeFileHandles::Never
        },
        inode_fd_cache: usize::from(input.config.inode_fd_cache % 4),
        ..Config::default()
    };
    let proc_self_fd = fs::File::open("/proc/self/fd").expect("/proc/self/fd");
    let mut fs = PassthroughFs::new(cfg, proc_self_fd).expect("the passthrough filesystem");
    if let Some(p) = input.config.dax {
        let policies = [
            DaxPolicy::Always,
            DaxPolicy::Never,
            DaxPolicy::LargeFiles,
            DaxPolicy::Attr,
        ];
        let window = Arc::new(StrictWindow {
            maps: Mutex::default(),
        });
        fs = fs.with_dax(window, policies[usize::from(p) % policies.len()]);
    }
    let server = Server::new(Arc::new(fs));

    let minor = input
        .init_minor
        .map_or(abi::KERNEL_MINOR_VERSION, |m| u32::from(m % 16) + 26);
    let init = abi::InitIn {
        major: abi::KERNEL_VERSION,
        minor,
        max_readahead: 1 << 17,
        flags: input.init_flags as u32,
        flags2: (input.init_flags >> 32) as u32,
        unused: [0; 11],
    };
    let reply = send(&server, request(opcode::INIT, 0, init.as_slice()), 1 << 12);
    if get_u32(&reply, 4) != Some(0) {
        // Refused (an old minor): the session is not started; requests get EIO.
        assert!(
            minor < abi::MIN_KERNEL_MINOR_VERSION,
            "INIT 7.{minor} refused"
        );
    }

    let mut seen = Seen {
        nodes: vec![abi::ROOT_ID],
        fhs: Vec::new(),
    };
    for name in ["f", "d", "esc", "up"] {
        let r = send(
            &server,
            request(
                opcode::LOOKUP,
                abi::ROOT_ID,
                &name_bytes(&Name::Bytes(name.into())),
            ),
            1 << 12,
        );
        learn(&mut seen, opcode::LOOKUP, &r);
    }
    if let Some(&f) = seen.nodes.get(1) {
        let open = abi::OpenIn {
            flags: libc::O_RDWR as u32,
            open_flags: 0,
        };
        let r = send(&server, request(opcode::OPEN, f, open.as_slice()), 1 << 12);
        learn(&mut seen, opcode::OPEN, &r);
    }
    let r = send(
        &server,
        request(
            opcode::OPENDIR,
            abi::ROOT_ID,
            abi::OpenIn::default().as_slice(),
        ),
        1 << 12,
    );
    learn(&mut seen, opcode::OPENDIR, &r);

    for r in input.requests.iter().take(16) {
        let (op, req) = build(r, &seen);
        let space = match r.space {
            Space::Full => 1 << 20 | 1 << 12,
            Space::Header => size_of::<abi::OutHeader>(),
            Space::Tiny(n) => usize::from(n),
            Space::Sized(n) => usize::from(n),
        };
        let reply = send(&server, req, space);
        learn(&mut seen, op, &reply);
    }
    drop(server);

    assert_eq!(
        snapshot(&env.parent, &env.sentinel),
        env.snapshot,
        "something outside the share changed"
    );
}

fuzz_target!(|input: Input| run(&input));
