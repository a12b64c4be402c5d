//! FUSE over one bench [`Ring`]: encoding a request into its slot's guest buffers, and
//! reading the reply back in place (no copy, no allocation per request).

use std::io::Write as _;

use vhostfsd::fuse::abi;
use vhostfsd::fuse::testing::RequestBuilder;
use vm_memory::{ByteValued, Bytes, GuestAddress};

use crate::ring::{self, Buf, HEADER_AREA, Ring};

/// One request to send from a slot: reused from one request to the next.
#[derive(Debug, Default)]
pub struct Req {
    pub op: u32,
    pub nodeid: u64,
    /// Arguments after the header (argument struct, then names), built in place.
    pub args: Vec<u8>,
    /// Request payload bytes already in the slot's request payload buffer (WRITE).
    pub payload: u32,
    /// Reply space for the reply's argument struct (after the 16-byte header).
    pub out_args: u32,
    /// Reply space for a payload, in a descriptor of its own (READ, READDIRPLUS).
    pub out_payload: u32,
}

impl Req {
    /// Starts a new request: `op` on `nodeid`, with `arg` as the argument struct.
    pub fn set<T: ByteValued>(&mut self, op: u32, nodeid: u64, arg: &T, out_args: u32) {
        self.op = op;
        self.nodeid = nodeid;
        self.args.clear();
        self.args.extend_from_slice(arg.as_slice());
        self.payload = 0;
        self.out_args = out_args;
        self.out_payload = 0;
    }

    /// Starts a request whose only argument is a name (LOOKUP, UNLINK).
    pub fn set_name(&mut self, op: u32, nodeid: u64, name: std::fmt::Arguments<'_>, out: u32) {
        self.op = op;
        self.nodeid = nodeid;
        self.args.clear();
        self.push_name(name);
        self.payload = 0;
        self.out_args = out;
        self.out_payload = 0;
    }

    /// Appends a NUL-terminated name to the arguments.
    pub fn push_name(&mut self, name: std::fmt::Arguments<'_>) {
        self.args.write_fmt(name).expect("format into a Vec");
        self.args.push(0);
    }
}

/// A decoded reply, borrowed from guest memory.
pub struct Reply<'a> {
    /// 0 or a negative errno.
    pub error: i32,
    /// The reply's argument struct area (`len - 16` bytes, at most the space given).
    pub args: &'a [u8],
    /// The payload descriptor's bytes that the reply covers.
    pub payload: &'a [u8],
}

impl Reply<'_> {
    /// The argument struct, or why not.
    pub fn arg<T: ByteValued + Default>(&self) -> Result<T, String> {
        if self.error != 0 {
            return Err(format!("error {}", -self.error));
        }
        if self.args.len() < size_of::<T>() {
            return Err(format!(
                "reply of {} bytes, {} wanted",
                self.args.len(),
                size_of::<T>()
            ));
        }
        let mut t = T::default();
        t.as_mut_slice()
            .copy_from_slice(&self.args[..size_of::<T>()]);
        Ok(t)
    }

    /// Ok for a success without payload.
    pub fn unit(&self) -> Result<(), String> {
        match self.error {
            0 => Ok(()),
            e => Err(format!("error {}", -e)),
        }
    }
}

/// Encodes `req` into slot `slot`'s buffers and puts its chain on the ring (not kicked).
pub fn send(ring: &mut Ring, scratch: &mut Vec<u8>, slot: usize, unique: u64, req: &Req) {
    let b = ring.bufs(slot);
    let args_len = req.args.len();
    let h = RequestBuilder::new(req.op, req.nodeid)
        .unique(unique)
        .caller(0, 0, 1)
        .header(args_len + req.payload as usize, 0);
    scratch.clear();
    scratch.extend_from_slice(h.as_slice());
    scratch.extend_from_slice(&req.args);
    assert!(scratch.len() as u64 <= HEADER_AREA);
    ring.mem()
        .mem()
        .write_slice(scratch, GuestAddress(b.request))
        .expect("write a request");
    let mut readable = [
        Buf {
            addr: b.request,
            len: scratch.len() as u32,
        },
        Buf { addr: 0, len: 0 },
    ];
    let nr = if req.payload > 0 {
        readable[1] = Buf {
            addr: b.request_payload,
            len: req.payload,
        };
        2
    } else {
        1
    };
    let mut writable = [Buf { addr: 0, len: 0 }; 2];
    let mut nw = 0;
    if has_reply(req.op) {
        writable[0] = Buf {
            addr: b.reply,
            len: 16 + req.out_args,
        };
        nw = 1;
        if req.out_payload > 0 {
            writable[1] = Buf {
                addr: b.reply_payload,
                len: req.out_payload,
            };
            nw = 2;
        }
    }
    ring.submit(slot, &readable[..nr], &writable[..nw]);
}

/// Whether the daemon answers `op` (FORGET and BATCH_FORGET get no reply).
pub fn has_reply(op: u32) -> bool {
    op != abi::opcode::FORGET && op != abi::opcode::BATCH_FORGET
}

/// Reads the reply to `req` (request `unique`) that slot `slot` got, checking its header
/// against the used ring's length.
pub fn reply<'a>(
    ring: &'a Ring,
    slot: usize,
    unique: u64,
    req: &Req,
    used: u32,
) -> Result<Reply<'a>, String> {
    if !has_reply(req.op) {
        return if used == 0 {
            Ok(Reply {
                error: 0,
                args: &[],
                payload: &[],
            })
        } else {
            Err(format!(
                "a request without reply came back with {used} bytes"
            ))
        };
    }
    let b = ring.bufs(slot);
    let h: abi::OutHeader = ring::read(ring.mem(), b.reply);
    if h.unique != unique {
        return Err(format!("reply to #{} in the slot of #{unique}", h.unique));
    }
    if h.len != used {
        return Err(format!(
            "reply header says {} bytes, the used ring {used}",
            h.len
        ));
    }
    let body = (h.len as usize)
        .checked_sub(16)
        .ok_or_else(|| format!("reply of {} bytes", h.len))?;
    if h.error != 0 {
        return if body == 0 && h.error < 0 {
            Ok(Reply {
                error: h.error,
                args: &[],
                payload: &[],
            })
        } else {
            Err(format!("error reply {} of {} bytes", h.error, h.len))
        };
    }
    let nargs = body.min(req.out_args as usize);
    let npayload = body - nargs;
    if npayload > req.out_payload as usize {
        return Err(format!(
            "reply of {} bytes overflows the reply space",
            h.len
        ));
    }
    // The argument struct and the payload may each span the descriptor boundary only when
    // the daemon fills descriptors in order, which it must.
    let args = ring::bytes(ring.mem(), b.reply + 16, nargs);
    let payload = ring::bytes(ring.mem(), b.reply_payload, npayload);
    Ok(Reply {
        error: 0,
        args,
        payload,
    })
}

/// One entry of a READDIRPLUS reply.
pub struct PlusEntry<'a> {
    pub entry: abi::EntryOut,
    pub dirent: abi::Dirent,
    pub name: &'a [u8],
}

/// Walks a READDIRPLUS reply body.
pub fn plus_entries(
    mut b: &[u8],
    mut f: impl FnMut(PlusEntry<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let head = size_of::<abi::EntryOut>() + size_of::<abi::Dirent>();
    while !b.is_empty() {
        if b.len() < head {
            return Err("a READDIRPLUS entry is cut short".into());
        }
        let mut entry = abi::EntryOut::default();
        entry
            .as_mut_slice()
            .copy_from_slice(&b[..size_of::<abi::EntryOut>()]);
        let mut dirent = abi::Dirent::default();
        dirent
            .as_mut_slice()
            .copy_from_slice(&b[size_of::<abi::EntryOut>()..head]);
        let namelen = dirent.namelen as usize;
        let rec = (head + namelen).next_multiple_of(8);
        if rec > b.len() {
            return Err("a READDIRPLUS name overruns the reply".into());
        }
        f(PlusEntry {
            entry,
            dirent,
            name: &b[head..head + namelen],
        })?;
        b = &b[rec..];
    }
    Ok(())
}
