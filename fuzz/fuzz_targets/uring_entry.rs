//! FUSE over io_uring ring entries through `fusedev::uring::entry::serve` and
//! `Server<PassthroughFs>` over a temporary share.
//!
//! Each input is a session: INIT, then up to 16 ring entries as the kernel would fill them
//! (the `fuse_in_header` in `in_out`, the first argument in `op_in`, the rest in the
//! payload buffer, `payload_sz` and `commit_id` in `ring_ent_in_out`), each field either
//! consistent or chosen by the fuzzer: the request length, `payload_sz` (up to beyond the
//! payload buffer), the first argument's size (up to beyond `op_in`), and the bytes left in
//! the buffers by the previous request.
//!
//! Invariants: no panic; the commit id returned is the entry's; the reply header names the
//! request's `unique`, has `error` in `-4095..=0`, and an error reply has `payload_sz` 0;
//! `payload_sz` never exceeds the payload buffer.
//!
//! Host safety: opcodes come from a list without MKNOD, SETLKW, FALLOCATE and
//! COPY_FILE_RANGE (see `fuse_request`, which covers those), or are unknown ones.

#![no_main]

use std::cell::RefCell;
use std::fs;
use std::mem::size_of;
use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vhostfsd::fuse::abi::{self, opcode, uring};
use vhostfsd::fuse::io::mem::{VecReader, VecWriter};
use vhostfsd::fuse::server::Server;
use vhostfsd::fuse::wait_budget::WaitBudget;
use vhostfsd::fusedev::uring::entry::{self, PAYLOAD};
use vhostfsd::passthrough::{Config, PassthroughFs};
use vm_memory::ByteValued;

/// Opcodes that are safe to run on the host with any arguments.
const OPCODES: &[u32] = &[
    opcode::LOOKUP,
    opcode::GETATTR,
    opcode::SETATTR,
    opcode::READLINK,
    opcode::OPEN,
    opcode::READ,
    opcode::WRITE,
    opcode::STATFS,
    opcode::RELEASE,
    opcode::FSYNC,
    opcode::GETXATTR,
    opcode::LISTXATTR,
    opcode::FLUSH,
    opcode::OPENDIR,
    opcode::READDIR,
    opcode::RELEASEDIR,
    opcode::ACCESS,
    opcode::CREATE,
    opcode::GETLK,
    opcode::SETLK,
    opcode::READDIRPLUS,
    opcode::LSEEK,
    opcode::UNLINK,
    opcode::MKDIR,
    opcode::FORGET,
    opcode::INTERRUPT,
    opcode::INIT,
    opcode::DESTROY,
];

#[derive(Arbitrary, Debug)]
enum Size {
    Exact,
    Delta(i16),
    Raw(u32),
}

#[derive(Arbitrary, Debug)]
struct Entry {
    opcode: Result<u8, u32>,
    nodeid: u8,
    fh: u8,
    unique: u64,
    commit_id: u64,
    op_in: Vec<u8>,
    payload: Vec<u8>,
    len: Size,
    payload_sz: Size,
    /// Leave the previous request's bytes in the header area instead of zeroing it.
    keep_stale: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    init_flags: u64,
    entries: Vec<Entry>,
}

fn sized(exact: usize, s: &Size) -> u32 {
    match *s {
        Size::Exact => exact as u32,
        Size::Delta(d) => (exact as u32).wrapping_add_signed(i32::from(d)),
        Size::Raw(v) => v,
    }
}

struct Buffers {
    headers: Vec<u8>,
    payload: Vec<u8>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers {
        headers: vec![0; uring::REQ_HEADER_SIZE],
        payload: vec![0; PAYLOAD],
    });
}

fn run(input: &Input) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let share = dir.path().join("share");
    fs::create_dir(&share).unwrap();
    fs::write(share.join("f"), b"hello, ring").unwrap();
    let cfg = Config {
        root_dir: share,
        ..Config::default()
    };
    let proc_self_fd = fs::File::open("/proc/self/fd").expect("/proc/self/fd");
    let fs = PassthroughFs::new(cfg, proc_self_fd).expect("the passthrough filesystem");
    let server = Server::new(Arc::new(fs));
    let init = abi::InitIn {
        major: abi::KERNEL_VERSION,
        minor: abi::KERNEL_MINOR_VERSION,
        max_readahead: 1 << 17,
        flags: input.init_flags as u32,
        flags2: (input.init_flags >> 32) as u32,
        unused: [0; 11],
    };
    let h = abi::InHeader {
        len: (size_of::<abi::InHeader>() + size_of::<abi::InitIn>()) as u32,
        opcode: opcode::INIT,
        unique: 1,
        ..Default::default()
    };
    let _ = server.handle_message(
        VecReader::new([h.as_slice(), init.as_slice()].concat()),
        VecWriter::new(4096),
    );

    BUFFERS.with_borrow_mut(|b| {
        for e in input.entries.iter().take(16) {
            let op = match e.opcode {
                Ok(i) => OPCODES[usize::from(i) % OPCODES.len()],
                Err(raw) => 1000 + raw % 1000,
            };
            if !e.keep_stale {
                b.headers.fill(0);
            }
            let op_in = &e.op_in[..e.op_in.len().min(uring::OP_IN_OUT_SZ)];
            let mut op_in = op_in.to_vec();
            // A file handle the session may know (0 or 1 after OPEN/OPENDIR).
            if op_in.len() >= 8 && matches!(op, opcode::READ | opcode::WRITE | opcode::RELEASE) {
                op_in[..8].copy_from_slice(&u64::from(e.fh % 4).to_ne_bytes());
            }
            let payload = &e.payload[..e.payload.len().min(PAYLOAD)];
            let exact_len = size_of::<abi::InHeader>() + op_in.len() + payload.len();
            let h = abi::InHeader {
                len: sized(exact_len, &e.len),
                opcode: op,
                unique: e.unique,
                nodeid: u64::from(e.nodeid % 4),
                uid: 0,
                gid: 0,
                pid: 4242,
                total_extlen: 0,
                padding: 0,
            };
            b.headers[..size_of::<abi::InHeader>()].copy_from_slice(h.as_slice());
            b.headers[uring::OP_IN_OFFSET..uring::OP_IN_OFFSET + op_in.len()]
                .copy_from_slice(&op_in);
            let ent = abi::UringEntInOut {
                commit_id: e.commit_id,
                payload_sz: sized(payload.len(), &e.payload_sz),
                ..Default::default()
            };
            b.headers[uring::ENT_IN_OUT_OFFSET..].copy_from_slice(ent.as_slice());
            b.payload[..payload.len()].copy_from_slice(payload);

            // One entry: a lock that is taken gets ENOLCK at once instead of a wait that
            // nothing in this single-threaded run could end.
            let commit = entry::serve(&server, &mut b.headers, &mut b.payload, &WaitBudget::new(1));
            assert_eq!(commit, e.commit_id, "commit id of another entry");
            let out = abi::OutHeader::from_slice(&b.headers[..size_of::<abi::OutHeader>()])
                .copied()
                .expect("an OutHeader");
            let ent = abi::UringEntInOut::from_slice(&b.headers[uring::ENT_IN_OUT_OFFSET..])
                .copied()
                .expect("the ring_ent_in_out");
            assert_eq!(out.unique, e.unique, "reply to the wrong request");
            assert!((-4095..=0).contains(&out.error), "bad error {}", out.error);
            assert!(
                out.error == 0 || ent.payload_sz == 0,
                "an error reply with a payload"
            );
            assert!(
                ent.payload_sz as usize <= PAYLOAD,
                "payload_sz beyond the buffer"
            );
        }
    });
}

fuzz_target!(|input: Input| run(&input));
