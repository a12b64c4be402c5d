#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/seeds/<target>/ (run it after changing the input types).

The fuzz targets take structured inputs (`#[derive(Arbitrary)]`); this encodes chosen
sessions the way `arbitrary` 1.5 decodes them: integers little endian, bool = low bit of a
byte, Option = bool then the value, an enum = a u32 whose variant is (x * variants) >> 32,
a Vec = (1, element)... then 0. libFuzzer starts from these and mutates them, so the DAX
requests (SETUPMAPPING/REMOVEMAPPING, hostile and well-formed) are in the corpus from the
first second instead of waiting for the fuzzer to find a window, a node and a mapping.

Check a seed with the debug build: RUST_LIBFUZZER_DEBUG_PATH=/tmp/in.txt
fuzz/target/debug/fuse_request fuzz/seeds/fuse_request/NAME; /tmp/in.txt shows the decoded input.
"""

import struct
from pathlib import Path

OUT = Path(__file__).resolve().parent


def u8(v): return struct.pack("<B", v)
def u16(v): return struct.pack("<H", v)
def u32(v): return struct.pack("<I", v)
def u64(v): return struct.pack("<Q", v & (1 << 64) - 1)
def boolean(b): return u8(1 if b else 0)


def variant(k: int, n: int) -> bytes:
    """The u32 that selects variant k of an enum with n variants."""
    return u32(-(-(k << 32) // n))


def vec(items: list[bytes]) -> bytes:
    return b"".join(b"\x01" + i for i in items) + b"\x00"


def byte_vec(data: bytes) -> bytes:
    return vec([bytes([b]) for b in data])


def option(v: bytes | None) -> bytes:
    return boolean(False) if v is None else boolean(True) + v


# fuse_request.rs: enum Opcode { Known(u8), Raw(u32) }
def opcode(op: int) -> bytes: return variant(1, 2) + u32(op)
# enum Node { Seen(u8), Root, Zero, Raw(u64) }; the target has seen [root, f, d, esc, up]
def node_seen(i: int) -> bytes: return variant(0, 4) + u8(i)
NODE_ROOT = variant(1, 4)
def node_raw(v: int) -> bytes: return variant(3, 4) + u64(v)
# enum Fh { Seen(u8), Zero, Raw(u64) }; handle 0 is "f" opened O_RDWR, 1 the root dir
def fh_seen(i: int) -> bytes: return variant(0, 3) + u8(i)
def fh_raw(v: int) -> bytes: return variant(2, 3) + u64(v)
NO_FH = fh_raw(-1)
CALLER_ROOT = variant(0, 4)
LEN_EXACT = variant(0, 3)
def len_delta(d: int) -> bytes: return variant(1, 3) + struct.pack("<b", d)
EXT_NONE = variant(0, 4)
SPACE_FULL = variant(0, 4)
SPACE_HEADER = variant(1, 4)

SETUPMAPPING, REMOVEMAPPING, LOOKUP, OPEN, SETATTR, WRITE = 48, 49, 1, 14, 4, 16
R, W = 2, 1
MB2 = 2 << 20
WINDOW = 16 << 20  # fuse_request.rs's StrictWindow

# INIT flags a Linux guest mounting with -o dax=inode offers (MAP_ALIGNMENT, HAS_INODE_DAX
# via INIT_EXT), plus ASYNC_READ and DO_READDIRPLUS.
DAX_INIT = (1 << 0) | (1 << 13) | (1 << 26) | (1 << 30) | (1 << 33)


def request(op: int, node: bytes, args: bytes = b"", payload: bytes = b"", fh: bytes = NO_FH,
            raw_args: bool = False, length: bytes = LEN_EXACT, space: bytes = SPACE_FULL,
            unique: int = 7) -> bytes:
    return (opcode(op) + node + node_seen(0) + fh + fh_seen(0) + CALLER_ROOT + boolean(raw_args)
            + byte_vec(args) + vec([]) + byte_vec(payload) + length + EXT_NONE + space + u64(unique))


def setupmapping(foffset: int, length: int, flags: int, moffset: int, fh: bytes = NO_FH,
                 node: bytes = node_seen(1), **kw) -> bytes:
    # fh is written over the first field by the target (from `fh`).
    args = u64(0) + u64(foffset) + u64(length) + u64(flags) + u64(moffset)
    return request(SETUPMAPPING, node, args, fh=fh, **kw)


def removemapping(ranges: list[tuple[int, int]], count: int | None = None, **kw) -> bytes:
    n = len(ranges) if count is None else count
    payload = b"".join(u64(off) + u64(ln) for off, ln in ranges)
    return request(REMOVEMAPPING, NODE_ROOT, u32(n), payload, **kw)


def session(requests: list[bytes], policy: int = 0, readonly: bool = False,
            init_flags: int = DAX_INIT) -> bytes:
    """policy: index into [Always, Never, LargeFiles, Attr]."""
    # FsConfig { dax, xattr, readonly, writeback, killpriv_v2, cache (auto), file_handles,
    # inode_fd_cache }
    config = option(u8(policy)) + boolean(False) + boolean(readonly) + boolean(False) \
        + boolean(False) + u8(2) + boolean(False) + u8(0)
    # Input { config, init_flags, init_minor: None, requests (take_rest) }
    return config + u64(init_flags) + option(None) + vec(requests)


def plain_session(requests: list[bytes], readonly: bool = False, file_handles: bool = False,
                  fd_cache: int = 0) -> bytes:
    """A session without a DAX window (cache auto), INIT as a Linux guest sends it; inodes
    held as fds, or as file handles with an fd cache of `fd_cache` (0-3) entries."""
    config = option(None) + boolean(False) + boolean(readonly) + boolean(False) \
        + boolean(False) + u8(2) + boolean(file_handles) + u8(fd_cache)
    return config + u64(DAX_INIT) + option(None) + vec(requests)


MKNOD, CREATE, BATCH_FORGET, READ = 8, 35, 42, 15
S_IFIFO, S_IFCHR, O_RDWR, O_CREAT, O_EXCL, O_TRUNC = 0o010000, 0o020000, 2, 0o100, 0o200, 0o1000


def mknod(name: bytes, mode: int) -> bytes:
    # MknodIn { mode, rdev (the target forces 0), umask, padding }
    return request(MKNOD, NODE_ROOT, u32(mode) + u32(0) + u32(0o022) + u32(0), name + b"\x00")


def create(name: bytes, flags: int) -> bytes:
    # CreateIn { flags, mode, umask, open_flags }
    return request(CREATE, NODE_ROOT, u32(flags) + u32(0o644) + u32(0o022) + u32(0),
                   name + b"\x00")


# Regression inputs of the security issue's holes (tests/special_files.rs and
# tests/allocation_bounds.rs hold the integration tests): each ran into the hole before it was
# closed (a worker blocked in open(2) on a FIFO, a host device opened, a huge allocation).
SECURITY_SEEDS = {
    # CREATE with O_CREAT and without O_EXCL over a FIFO and a device node the guest made:
    # refused (never opened on the host), with and without O_TRUNC; then a plain OPEN.
    "sec-create-over-special-files": plain_session([
        mknod(b"p", S_IFIFO | 0o644),
        create(b"p", O_RDWR | O_CREAT),
        create(b"p", O_RDWR | O_CREAT | O_TRUNC),
        mknod(b"c", S_IFCHR | 0o600),
        create(b"c", O_RDWR | O_CREAT),
        create(b"c", O_RDWR | O_CREAT | O_EXCL),
        request(LOOKUP, NODE_ROOT, payload=b"p\x00"),
        request(OPEN, node_seen(5), u32(O_RDWR) + u32(0)),
    ]),
    # Header lengths the chain does not back and that exceed max_write plus headers: refused
    # before anything is allocated; a READ asking for 4 GiB gets at most max_read.
    "sec-oversized-requests": plain_session([
        request(WRITE, node_seen(1), u64(0) + u64(0) + u32(4096) + u32(0) + u64(0) + u32(0)
                + u32(0), payload=b"w" * 64, fh=fh_seen(0), length=variant(2, 3) + u32(0xffff_ffff)),
        request(WRITE, node_seen(1), u64(0) + u64(0) + u32(0xffff_ff00) + u32(0) + u64(0)
                + u32(0) + u32(0), payload=b"w" * 64, fh=fh_seen(0)),
        request(READ, node_seen(1), u64(0) + u64(0) + u32(0xffff_ffff) + u32(0) + u64(0)
                + u32(0) + u32(0), fh=fh_seen(0)),
        request(LOOKUP, NODE_ROOT, payload=b"f\x00", length=variant(2, 3) + u32(1 << 31)),
        request(LOOKUP, NODE_ROOT, payload=b"f\x00", length=len_delta(-100)),
    ]),
    # BATCH_FORGET whose count claims far more entries than the payload holds.
    "sec-batch-forget-count": plain_session([
        request(LOOKUP, NODE_ROOT, payload=b"f\x00"),
        request(BATCH_FORGET, NODE_ROOT, u32(0xffff_ffff) + u32(0), u64(2) + u64(1),
                raw_args=True),
        request(BATCH_FORGET, NODE_ROOT, u32(1 << 20) + u32(0), b"", raw_args=True),
        request(LOOKUP, NODE_ROOT, payload=b"f\x00"),
    ]),
}


FORGET, GETATTR, UNLINK, RMDIR, RENAME = 2, 3, 10, 11, 12

# Inodes held as file handles, their fds kept in a cache of one entry: lookups and GETATTRs
# of two inodes (the second finds the cache full), FORGET of a cached one and a GETATTR of
# it afterwards (EBADF), a forget of an unknown id, and removals under names in use.
FD_CACHE_SEEDS = {
    "handles-fd-cache-full-and-forget": plain_session([
        request(LOOKUP, NODE_ROOT, payload=b"f\x00"),
        request(LOOKUP, NODE_ROOT, payload=b"d\x00"),
        request(GETATTR, node_seen(1), u32(0) + u32(0) + u64(0)),
        request(GETATTR, node_seen(2), u32(0) + u32(0) + u64(0)),
        request(GETATTR, node_seen(1), u32(0) + u32(0) + u64(0)),
        request(FORGET, node_seen(1), u64(1)),
        request(GETATTR, node_seen(1), u32(0) + u32(0) + u64(0)),
        request(FORGET, node_raw(0xdead_beef), u64(1 << 63)),
        request(LOOKUP, node_seen(2), payload=b"x\x00"),
        request(UNLINK, NODE_ROOT, payload=b"g\x00"),
        request(RENAME, NODE_ROOT, u64(1), payload=b"f\x00new\x00"),
        request(GETATTR, node_seen(2), u32(0) + u32(0) + u64(0)),
        request(RMDIR, NODE_ROOT, payload=b"d\x00"),
        request(GETATTR, node_seen(2), u32(0) + u32(0) + u64(0)),
    ], file_handles=True, fd_cache=1),
}


SEEDS = {
    # Map, upgrade to writable (unmap first), neighbour, remove both.
    "dax-map-upgrade-remove": session([
        setupmapping(0, MB2, R, 0),
        setupmapping(0, MB2, R | W, 0),
        setupmapping(0, MB2, R, MB2, fh=fh_seen(0)),
        removemapping([(0, MB2), (MB2, MB2)]),
    ]),
    # Values out of bounds: past the window, straddling its end, wrapping, misaligned,
    # zero length, no access flag, unknown flag, a partial overlap.
    "dax-hostile-setupmapping": session([
        setupmapping(0, MB2, R, 0),
        setupmapping(0, MB2, R, WINDOW),
        setupmapping(0, MB2, R, WINDOW - 4096),
        setupmapping(0, 8192, R, -4096),
        setupmapping(0, MB2, R, 100),
        setupmapping(7, MB2, R, 2 * MB2),
        setupmapping(0, 0, R, 2 * MB2),
        setupmapping(0, MB2, 0, 2 * MB2),
        setupmapping(0, MB2, R | 4, 2 * MB2),
        setupmapping(0, MB2, R, MB2 // 2),
        setupmapping(-4096, MB2, R, 2 * MB2),
        setupmapping(0, MB2, R, 0, fh=fh_raw(0xdead)),
        setupmapping(0, MB2, R, 0, node=node_seen(2)),
        setupmapping(0, MB2, R, 0, node=node_raw(0x7777)),
        request(SETUPMAPPING, node_seen(1), b"\x00" * 12, raw_args=True),  # short arguments
    ]),
    # Removals that do not match: not mapped, part of a mapping, longer, twice, good then
    # bad (removes nothing), a count larger than the entries, a huge count, a short header.
    "dax-hostile-removemapping": session([
        setupmapping(0, MB2, R, 0),
        setupmapping(0, MB2, R, MB2),
        removemapping([(4 * MB2, MB2)]),
        removemapping([(0, 4096)]),
        removemapping([(0, 2 * MB2)]),
        removemapping([(MB2, MB2), (MB2, MB2)]),
        removemapping([(MB2, MB2), (8 * MB2, MB2)]),
        removemapping([(0, MB2)], count=3),
        removemapping([(0, MB2)], count=0xffff_ffff),
        removemapping([], count=0),
        request(REMOVEMAPPING, NODE_ROOT, b"\x01\x00", raw_args=True),
        removemapping([(0, MB2), (MB2, MB2)], length=len_delta(-8)),
        removemapping([(0, MB2), (MB2, MB2)]),
    ]),
    # A read-only open cannot be mapped writable; a read-only share maps nothing writable.
    "dax-readonly-handle": session([
        request(OPEN, node_seen(1), u32(0) + u32(0)),
        setupmapping(0, MB2, R | W, 0, fh=fh_seen(2)),
        setupmapping(0, MB2, R, 0, fh=fh_seen(2)),
        removemapping([(0, MB2)]),
    ]),
    "dax-readonly-share": session([
        setupmapping(0, MB2, R | W, 0),
        setupmapping(0, MB2, R, 0),
    ], readonly=True),
    # The file grows under a short last chunk (WRITE past the end), then shrinks (SETATTR);
    # dax=inode with --dax-policy large-files answers LOOKUP with ATTR_DAX by size.
    "dax-grow-shrink-large-files": session([
        setupmapping(0, MB2, R | W, 0, fh=fh_seen(0)),
        request(WRITE, node_seen(1), u64(0) + u64(3 << 20) + u32(0) + u32(0) + u64(0) + u32(0)
                + u32(0), payload=b"grown", fh=fh_seen(0)),
        request(SETATTR, node_seen(1), u32(1 << 3) + u32(0) + u64(0) + u64(4096) + b"\x00" * 64),
        request(LOOKUP, NODE_ROOT, payload=b"f\x00"),
        removemapping([(0, MB2)]),
    ], policy=2),
    # A reply space too small for any answer, around a map.
    "dax-tiny-reply-space": session([
        setupmapping(0, MB2, R, 0, space=SPACE_HEADER),
        removemapping([(0, MB2)], space=variant(2, 4) + u8(3)),
    ], policy=3),
}


def main() -> None:
    d = OUT / "fuse_request"
    d.mkdir(exist_ok=True)
    for name, data in {**SEEDS, **SECURITY_SEEDS, **FD_CACHE_SEEDS}.items():
        (d / name).write_bytes(data)
        print(f"{d / name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
