//! The workloads: what each request slot sends next, and how each reply is checked against
//! the host. Multi-request operations (CREATE+RELEASE+UNLINK+FORGET, OPEN+RELEASE, the
//! build-tree mix) are small per-slot state machines.

use std::time::Instant;

use clap::ValueEnum;
use vhostfsd::fuse::abi::{self, opcode};

use crate::conn::{Reply, Req, plus_entries};
use crate::share::{self, Share};

/// READDIRPLUS reply space, a page as the Linux driver asks for.
pub const READDIR_SIZE: u32 = 4096;

/// A workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// 4 KiB READs of the data file (64 MiB).
    #[value(name = "read-4k")]
    Read4k,
    /// 128 KiB READs.
    #[value(name = "read-128k")]
    Read128k,
    /// 1 MiB READs.
    #[value(name = "read-1m")]
    Read1m,
    /// 4 KiB WRITEs into the write file (16 MiB), checked on the host afterwards.
    #[value(name = "write-4k")]
    Write4k,
    /// GETATTR of one file.
    Getattr,
    /// LOOKUP of 1,000 existing names in turn.
    LookupHit,
    /// LOOKUP of missing names.
    LookupMiss,
    /// READDIRPLUS (4 KiB replies) over a 10,000-entry directory; one op is one entry.
    Readdirplus,
    /// CREATE + RELEASE + UNLINK + FORGET; one op is the cycle.
    Create,
    /// OPEN + RELEASE; one op is the pair.
    Open,
    /// SETATTR of the mtime, each slot on its own file.
    Setattr,
    /// A build tree: LOOKUP dir, LOOKUP file, LOOKUP missing header, GETATTR, OPEN, READ
    /// the whole file, RELEASE; one op is one request.
    Mixed,
    /// GETATTR of the `inodes/` files looked up, scattered over the whole inode table.
    GetattrMany,
    /// LOOKUP of the `inodes/` files looked up, scattered over the whole inode table (each
    /// finds the node the first lookup made).
    LookupMany,
}

impl Kind {
    /// Every workload, in table order.
    pub const ALL: [Kind; 14] = [
        Kind::Read4k,
        Kind::Read128k,
        Kind::Read1m,
        Kind::Write4k,
        Kind::Getattr,
        Kind::LookupHit,
        Kind::LookupMiss,
        Kind::Readdirplus,
        Kind::Create,
        Kind::Open,
        Kind::Setattr,
        Kind::Mixed,
        Kind::GetattrMany,
        Kind::LookupMany,
    ];

    /// Name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Read4k => "read-4k",
            Kind::Read128k => "read-128k",
            Kind::Read1m => "read-1m",
            Kind::Write4k => "write-4k",
            Kind::Getattr => "getattr",
            Kind::LookupHit => "lookup-hit",
            Kind::LookupMiss => "lookup-miss",
            Kind::Readdirplus => "readdirplus-entries",
            Kind::Create => "create-release-unlink",
            Kind::Open => "open-release",
            Kind::Setattr => "setattr-mtime",
            Kind::Mixed => "mixed-build-tree",
            Kind::GetattrMany => "getattr-many",
            Kind::LookupMany => "lookup-many",
        }
    }

    /// Whether the workload READs the data file.
    pub fn is_read(self) -> bool {
        self.read_size().is_some()
    }

    /// Whether the workload works on the `inodes/` files looked up (the inode table).
    pub fn needs_table(self) -> bool {
        matches!(self, Kind::GetattrMany | Kind::LookupMany)
    }

    /// READ size of the read workloads.
    fn read_size(self) -> Option<u32> {
        match self {
            Kind::Read4k => Some(4096),
            Kind::Read128k => Some(128 << 10),
            Kind::Read1m => Some(1 << 20),
            _ => None,
        }
    }

    /// Payload space a slot needs.
    pub fn payload(self) -> u64 {
        match self {
            Kind::Read4k | Kind::Read128k | Kind::Read1m => {
                u64::from(self.read_size().unwrap_or(0))
            }
            Kind::Write4k => 4096,
            Kind::Readdirplus => u64::from(READDIR_SIZE),
            Kind::Mixed => 16 << 10,
            _ => 0,
        }
    }

    /// Whether each slot holds an open handle for the whole run (opened by `prepare`).
    pub fn needs_handle(self) -> Option<(u32, &'static str, i32)> {
        match self {
            Kind::Read4k | Kind::Read128k | Kind::Read1m => {
                Some((opcode::OPEN, "data.bin", libc::O_RDONLY))
            }
            Kind::Write4k => Some((opcode::OPEN, "write.bin", libc::O_RDWR)),
            Kind::Readdirplus => Some((opcode::OPENDIR, "dir10k", libc::O_RDONLY)),
            _ => None,
        }
    }
}

/// Node ids of the share's top-level entries, looked up once per connection.
#[derive(Debug, Clone, Default)]
pub struct Nodes {
    pub data: u64,
    pub write: u64,
    pub attr: u64,
    pub names: u64,
    pub dir10k: u64,
    pub create: u64,
    pub tree: u64,
}

/// The `inodes/` files looked up so far: node ids of the tree's top directory, of its
/// directories, and of its files in order.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub top: u64,
    pub dirs: Vec<u64>,
    pub nodes: Vec<u64>,
}

/// Where a slot is in its workload.
#[derive(Debug)]
pub struct Slot {
    /// Global slot number (queue * depth + slot), which keeps slots' files apart.
    pub global: u64,
    /// Operations this slot started.
    pub k: u64,
    /// Step within a multi-request operation.
    pub step: u8,
    /// The handle opened by `prepare`, or by this operation.
    pub fh: u64,
    /// A node id from an earlier step.
    pub node: u64,
    /// A directory node id from an earlier step (mixed).
    pub dir: u64,
    /// File offset (reads, writes) or directory offset (READDIRPLUS).
    pub off: u64,
    /// Entries seen in this pass over the directory (READDIRPLUS).
    pub seen: u64,
    /// When the current operation started.
    pub started: Instant,
    /// The request in flight.
    pub req: Req,
    pub unique: u64,
}

impl Slot {
    pub fn new(global: u64) -> Self {
        Self {
            global,
            k: 0,
            step: 0,
            fh: 0,
            node: 0,
            dir: 0,
            off: 0,
            seen: 0,
            started: Instant::now(),
            req: Req::default(),
            unique: 0,
        }
    }
}

/// What one checked reply meant.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    /// Operations (in the workload's unit) completed by this reply.
    pub ops: u64,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Whether the slot's operation is over (a new one starts with the next request).
    pub finished: bool,
}

const fn done(ops: u64, bytes: u64) -> Result<Done, String> {
    Ok(Done {
        ops,
        bytes,
        finished: true,
    })
}

const NEXT: Result<Done, String> = Ok(Done {
    ops: 0,
    bytes: 0,
    finished: false,
});

/// A small deterministic mix of two numbers (the build-tree file choice).
fn mix(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 29)
}

/// Everything a workload needs to build and check requests.
pub struct Plan<'a> {
    pub kind: Kind,
    pub share: &'a Share,
    pub nodes: &'a Nodes,
    pub table: &'a Table,
    /// Slots over all queues.
    pub total_slots: u64,
}

impl Plan<'_> {
    /// Builds slot `s`'s next request into `s.req`; `payload` is the slot's request payload
    /// buffer, filled for WRITE.
    pub fn next(&self, s: &mut Slot, payload: &mut dyn FnMut(&[u8]), scratch: &mut Vec<u8>) {
        let n = self.nodes;
        let turn = s.global + s.k * self.total_slots;
        match self.kind {
            Kind::Read4k | Kind::Read128k | Kind::Read1m => {
                let size = self.kind.read_size().unwrap_or(0);
                s.off = turn * u64::from(size) % self.share.sizes.data;
                let arg = abi::ReadIn {
                    fh: s.fh,
                    offset: s.off,
                    size,
                    ..Default::default()
                };
                s.req.set(opcode::READ, n.data, &arg, 0);
                s.req.out_payload = size;
            }
            Kind::Write4k => {
                s.off = turn * 4096 % self.share.sizes.write;
                let arg = abi::WriteIn {
                    fh: s.fh,
                    offset: s.off,
                    size: 4096,
                    ..Default::default()
                };
                s.req.set(opcode::WRITE, n.write, &arg, 8);
                scratch.resize(4096, 0);
                share::fill(scratch, share::WRITE_SEED, s.off);
                payload(scratch);
                s.req.payload = 4096;
            }
            Kind::Getattr => {
                s.req
                    .set(opcode::GETATTR, n.attr, &abi::GetattrIn::default(), 104);
            }
            Kind::LookupHit => {
                let (name, _) = &self.share.names[(turn % self.share.sizes.names as u64) as usize];
                s.req
                    .set_name(opcode::LOOKUP, n.names, format_args!("{name}"), 128);
            }
            Kind::LookupMiss => {
                s.req.set_name(
                    opcode::LOOKUP,
                    n.names,
                    format_args!("missing-{}", turn % 100_000),
                    128,
                );
            }
            Kind::Readdirplus => {
                let arg = abi::ReadIn {
                    fh: s.fh,
                    offset: s.off,
                    size: READDIR_SIZE,
                    ..Default::default()
                };
                s.req.set(opcode::READDIRPLUS, n.dir10k, &arg, 0);
                s.req.out_payload = READDIR_SIZE;
            }
            Kind::Create => self.next_create(s),
            Kind::Open => {
                if s.step == 0 {
                    let arg = abi::OpenIn {
                        flags: libc::O_RDONLY as u32,
                        open_flags: 0,
                    };
                    s.req.set(opcode::OPEN, n.attr, &arg, 16);
                } else {
                    release(&mut s.req, n.attr, s.fh);
                }
            }
            Kind::Setattr => {
                let arg = abi::SetattrIn {
                    valid: abi::setattr_valid::MTIME,
                    mtime: 1_000_000 + turn,
                    mtimensec: 0,
                    ..Default::default()
                };
                s.req.set(opcode::SETATTR, s.node, &arg, 104);
            }
            Kind::Mixed => self.next_mixed(s),
            Kind::GetattrMany => {
                let i = self.table_file(s);
                s.req.set(
                    opcode::GETATTR,
                    self.table.nodes[i],
                    &abi::GetattrIn::default(),
                    104,
                );
            }
            Kind::LookupMany => {
                let i = self.table_file(s);
                s.req.set_name(
                    opcode::LOOKUP,
                    self.table.dirs[i / share::TABLE_DIR_FILES],
                    format_args!("{}", share::table_file(i)),
                    128,
                );
            }
        }
    }

    /// The `inodes/` file slot `s` works on now: scattered over the table, so a large
    /// table is not walked in the order it was filled.
    fn table_file(&self, s: &Slot) -> usize {
        (mix(s.global, s.k) % self.table.nodes.len() as u64) as usize
    }

    fn next_create(&self, s: &mut Slot) {
        let parent = self.nodes.create;
        let name = format_args!("c{}-{}", s.global, s.k);
        match s.step {
            0 => {
                let arg = abi::CreateIn {
                    flags: (libc::O_RDWR | libc::O_CREAT | libc::O_EXCL) as u32,
                    mode: libc::S_IFREG | 0o644,
                    umask: 0o022,
                    open_flags: 0,
                };
                s.req.set(opcode::CREATE, parent, &arg, 144);
                s.req.push_name(name);
            }
            1 => release(&mut s.req, s.node, s.fh),
            2 => s.req.set_name(opcode::UNLINK, parent, name, 0),
            _ => {
                s.req
                    .set(opcode::FORGET, s.node, &abi::ForgetIn { nlookup: 1 }, 0);
            }
        }
    }

    fn tree_file(&self, s: &Slot) -> (usize, usize) {
        let r = mix(s.global, s.k);
        let d = (r % self.share.sizes.tree_dirs as u64) as usize;
        let f = ((r >> 16) % self.share.sizes.tree_files as u64) as usize;
        (d, f)
    }

    fn next_mixed(&self, s: &mut Slot) {
        let (d, f) = self.tree_file(s);
        let dir = &self.share.tree[d];
        let file = &dir.files[f];
        match s.step {
            0 => s.req.set_name(
                opcode::LOOKUP,
                self.nodes.tree,
                format_args!("{}", dir.name),
                128,
            ),
            1 => s
                .req
                .set_name(opcode::LOOKUP, s.dir, format_args!("{}", file.name), 128),
            2 => s.req.set_name(
                opcode::LOOKUP,
                s.dir,
                format_args!("config{}.h", s.k % 8),
                128,
            ),
            3 => s
                .req
                .set(opcode::GETATTR, s.node, &abi::GetattrIn::default(), 104),
            4 => {
                let arg = abi::OpenIn {
                    flags: libc::O_RDONLY as u32,
                    open_flags: 0,
                };
                s.req.set(opcode::OPEN, s.node, &arg, 16);
            }
            5 => {
                let arg = abi::ReadIn {
                    fh: s.fh,
                    offset: 0,
                    size: 16 << 10,
                    ..Default::default()
                };
                s.req.set(opcode::READ, s.node, &arg, 0);
                s.req.out_payload = 16 << 10;
            }
            _ => release(&mut s.req, s.node, s.fh),
        }
    }

    /// Checks the reply to slot `s`'s request and advances its state.
    pub fn check(&self, s: &mut Slot, r: &Reply<'_>) -> Result<Done, String> {
        match self.kind {
            Kind::Read4k | Kind::Read128k | Kind::Read1m => {
                let d = self.check_read_reply(r)?;
                share::check(r.payload, share::DATA_SEED, s.off).map_err(read_differs)?;
                Ok(d)
            }
            Kind::Write4k => {
                let out: abi::WriteOut = r.arg()?;
                if out.size != 4096 {
                    return Err(format!("WRITE wrote {} bytes, not 4096", out.size));
                }
                done(1, 4096)
            }
            Kind::Getattr => {
                let a: abi::AttrOut = r.arg()?;
                if a.attr.ino != self.share.ino("attr.bin") || a.attr.size != 4096 {
                    return Err(format!(
                        "GETATTR returned ino {} size {}",
                        a.attr.ino, a.attr.size
                    ));
                }
                done(1, 0)
            }
            Kind::LookupHit => {
                let turn = s.global + s.k * self.total_slots;
                let (name, ino) =
                    &self.share.names[(turn % self.share.sizes.names as u64) as usize];
                let e: abi::EntryOut = r.arg().map_err(|e| format!("LOOKUP {name}: {e}"))?;
                if e.attr.ino != *ino || e.nodeid == 0 {
                    return Err(format!(
                        "LOOKUP {name}: ino {} node {}",
                        e.attr.ino, e.nodeid
                    ));
                }
                done(1, 0)
            }
            Kind::LookupMiss => check_miss(r).and(done(1, 0)),
            Kind::Readdirplus => self.check_readdirplus(s, r),
            Kind::Create => self.check_create(s, r),
            Kind::Open => {
                if s.step == 0 {
                    s.fh = r.arg::<abi::OpenOut>()?.fh;
                    s.step = 1;
                    NEXT
                } else {
                    r.unit()?;
                    s.step = 0;
                    done(1, 0)
                }
            }
            Kind::Setattr => {
                let a: abi::AttrOut = r.arg()?;
                let want = 1_000_000 + s.global + s.k * self.total_slots;
                if a.attr.ino != self.share.names[s.global as usize].1 || a.attr.mtime != want {
                    return Err(format!("SETATTR: mtime {} not {want}", a.attr.mtime));
                }
                done(1, 0)
            }
            Kind::Mixed => self.check_mixed(s, r),
            Kind::GetattrMany => {
                let i = self.table_file(s);
                let a: abi::AttrOut = r.arg()?;
                if a.attr.ino != self.share.table_inos[i] {
                    return Err(format!("GETATTR of inodes/ file {i}: ino {}", a.attr.ino));
                }
                done(1, 0)
            }
            Kind::LookupMany => {
                let i = self.table_file(s);
                let e: abi::EntryOut = r
                    .arg()
                    .map_err(|e| format!("LOOKUP of inodes/ file {i}: {e}"))?;
                if e.attr.ino != self.share.table_inos[i] || e.nodeid != self.table.nodes[i] {
                    return Err(format!(
                        "LOOKUP of inodes/ file {i}: ino {} node {} (node {} before)",
                        e.attr.ino, e.nodeid, self.table.nodes[i]
                    ));
                }
                done(1, 0)
            }
        }
    }

    /// Checks a READ reply but not its data: no error, as many bytes as asked for.
    pub fn check_read_reply(&self, r: &Reply<'_>) -> Result<Done, String> {
        r.unit()?;
        let size = self.kind.read_size().unwrap_or(0) as usize;
        if r.payload.len() != size {
            return Err(format!(
                "READ returned {} bytes, not {size}",
                r.payload.len()
            ));
        }
        done(1, size as u64)
    }

    fn check_readdirplus(&self, s: &mut Slot, r: &Reply<'_>) -> Result<Done, String> {
        r.unit()?;
        if r.payload.is_empty() {
            if s.seen != self.share.sizes.dir_entries as u64 {
                return Err(format!(
                    "a READDIRPLUS pass listed {} entries, not {}",
                    s.seen, self.share.sizes.dir_entries
                ));
            }
            s.seen = 0;
            s.off = 0;
            return done(0, 0);
        }
        let mut n = 0;
        let mut last = s.off;
        plus_entries(r.payload, |e| {
            last = e.dirent.off;
            if e.name == b"." || e.name == b".." {
                return Ok(());
            }
            let name = std::str::from_utf8(e.name).map_err(|_| "a non-UTF-8 name")?;
            let want = self
                .share
                .dir_entries
                .get(name)
                .ok_or_else(|| format!("READDIRPLUS listed an unknown name {name:?}"))?;
            if e.dirent.ino != *want || e.entry.attr.ino != *want || e.entry.nodeid == 0 {
                return Err(format!("READDIRPLUS entry {name}: wrong inode"));
            }
            n += 1;
            Ok(())
        })?;
        s.seen += n;
        s.off = last;
        done(n, r.payload.len() as u64)
    }

    fn check_create(&self, s: &mut Slot, r: &Reply<'_>) -> Result<Done, String> {
        match s.step {
            0 => {
                let e: abi::EntryOut = r.arg().map_err(|e| format!("CREATE: {e}"))?;
                if e.nodeid == 0 || e.attr.mode & libc::S_IFMT != libc::S_IFREG {
                    return Err("CREATE returned no regular file".into());
                }
                let o: abi::OpenOut = r_arg_at(r, 128)?;
                s.node = e.nodeid;
                s.fh = o.fh;
            }
            1 => r.unit().map_err(|e| format!("RELEASE: {e}"))?,
            2 => r.unit().map_err(|e| format!("UNLINK: {e}"))?,
            _ => {
                s.step = 0;
                return done(1, 0);
            }
        }
        s.step += 1;
        NEXT
    }

    fn check_mixed(&self, s: &mut Slot, r: &Reply<'_>) -> Result<Done, String> {
        let (d, f) = self.tree_file(s);
        let dir = &self.share.tree[d];
        let file = &dir.files[f];
        let mut bytes = 0;
        match s.step {
            0 => {
                let e: abi::EntryOut = r.arg()?;
                if e.attr.ino != dir.ino {
                    return Err(format!("LOOKUP {}: wrong inode", dir.name));
                }
                s.dir = e.nodeid;
            }
            1 => {
                let e: abi::EntryOut = r.arg()?;
                if e.attr.ino != file.ino {
                    return Err(format!("LOOKUP {}: wrong inode", file.name));
                }
                s.node = e.nodeid;
            }
            2 => check_miss(r)?,
            3 => {
                let a: abi::AttrOut = r.arg()?;
                if a.attr.ino != file.ino || a.attr.size != file.size {
                    return Err(format!("GETATTR {}: wrong inode or size", file.name));
                }
            }
            4 => s.fh = r.arg::<abi::OpenOut>()?.fh,
            5 => {
                r.unit()?;
                if r.payload.len() as u64 != file.size {
                    return Err(format!("READ {}: {} bytes", file.name, r.payload.len()));
                }
                share::check(r.payload, file.seed, 0)
                    .map_err(|at| format!("READ {}: differs at {at}", file.name))?;
                bytes = file.size;
            }
            _ => {
                r.unit()?;
                s.step = 0;
                return done(1, 0);
            }
        }
        s.step += 1;
        Ok(Done {
            ops: 1,
            bytes,
            finished: false,
        })
    }
}

fn release(req: &mut Req, node: u64, fh: u64) {
    let arg = abi::ReleaseIn {
        fh,
        ..Default::default()
    };
    req.set(opcode::RELEASE, node, &arg, 0);
}

fn check_miss(r: &Reply<'_>) -> Result<(), String> {
    match r.error {
        e if e == -libc::ENOENT => Ok(()),
        // A negative entry (node id 0) is the other way to say "no such name".
        0 if r.arg::<abi::EntryOut>()?.nodeid == 0 => Ok(()),
        e => Err(format!("LOOKUP of a missing name: error {e}")),
    }
}

fn r_arg_at<T: vm_memory::ByteValued + Default>(r: &Reply<'_>, at: usize) -> Result<T, String> {
    let b = r.args.get(at..).unwrap_or_default();
    if b.len() < size_of::<T>() {
        return Err("reply too short".into());
    }
    let mut t = T::default();
    t.as_mut_slice().copy_from_slice(&b[..size_of::<T>()]);
    Ok(t)
}

/// The error of READ data that differs from the file at offset `at`.
pub fn read_differs(at: u64) -> String {
    format!("READ data differs from the file at offset {at}")
}
