//! DAX checks (`checker dax DIR` and `checker statx-dax PATH yes|no`): the file is in DAX
//! mode (statx STATX_ATTR_DAX), shared mmap writes reach the host file after msync (the host
//! verifies `DIR/dax-mmap-guest.bin` after the VM is gone), a host-written file reads back
//! through a mapping, and a mapped file survives truncate and extend.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::{ensure, pattern, CheckResult, Report};

/// `STATX_ATTR_DAX` (Linux 5.8).
const STATX_ATTR_DAX: u64 = 0x0020_0000;

/// Whether `path` is in DAX mode, from statx.
pub fn is_dax(path: &Path) -> Result<bool, String> {
    let c = super::cpath(path);
    // SAFETY: zeroed statx is a valid out-buffer; statx writes at most its size.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `stx` is a writable statx, both valid for the call.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            0,
            libc::STATX_BASIC_STATS,
            &mut stx,
        )
    };
    ensure(rc == 0, || {
        format!(
            "statx {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        )
    })?;
    Ok(stx.stx_attributes & STATX_ATTR_DAX != 0)
}

/// A shared mapping of the first `len` bytes of `f`, unmapped when dropped.
struct Map {
    ptr: *mut u8,
    len: usize,
}

impl Map {
    /// Read-write.
    fn new(f: &File, len: usize) -> Result<Self, String> {
        Self::with_prot(f, len, libc::PROT_READ | libc::PROT_WRITE)
    }
    fn read_only(f: &File, len: usize) -> Result<Self, String> {
        Self::with_prot(f, len, libc::PROT_READ)
    }
    fn with_prot(f: &File, len: usize, prot: i32) -> Result<Self, String> {
        // SAFETY: a new shared mapping of an open file at an address the kernel picks.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        ensure(p != libc::MAP_FAILED, || {
            format!("mmap: {}", std::io::Error::last_os_error())
        })?;
        Ok(Self { ptr: p.cast(), len })
    }
    /// The whole mapping.
    fn as_slice(&self) -> &[u8] {
        // SAFETY: the whole mapping, which lives as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    fn bytes(&self, off: usize, n: usize) -> Vec<u8> {
        assert!(off + n <= self.len);
        // SAFETY: inside the mapping, which lives as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.add(off), n) }.to_vec()
    }
    fn write(&self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.len);
        // SAFETY: inside the writable mapping; no Rust reference into it is alive.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(off), data.len()) };
    }
    fn msync(&self) -> CheckResult {
        // SAFETY: the range is this mapping.
        let rc = unsafe { libc::msync(self.ptr.cast(), self.len, libc::MS_SYNC) };
        ensure(rc == 0, || {
            format!("msync: {}", std::io::Error::last_os_error())
        })
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

fn rw(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))
}

/// Size and seed of the file the guest writes through a mapping (the host checks it).
pub const GUEST_MMAP: (usize, u64) = (3 << 20, 21);
/// Size and seed of the file the host writes before boot (the guest checks it).
pub const HOST_MMAP: (usize, u64) = (5 << 20, 22);

pub fn dax(dir: &Path) -> std::process::ExitCode {
    let mut r = Report::default();
    let guest = dir.join("dax-mmap-guest.bin");
    r.check("mmap write + msync (host verifies)", || {
        let (size, seed) = GUEST_MMAP;
        let f = rw(&guest)?;
        f.set_len(size as u64).map_err(|e| e.to_string())?;
        let m = Map::new(&f, size)?;
        m.write(0, &pattern(size, seed));
        m.msync()
    });
    r.check("statx STATX_ATTR_DAX", || {
        ensure(is_dax(&guest)?, || "not in DAX mode".into())
    });
    r.check("mmap read of a host-written file", || {
        let (size, seed) = HOST_MMAP;
        let f = File::open(dir.join("dax-host.bin")).map_err(|e| e.to_string())?;
        let ok = Map::read_only(&f, size)?.as_slice() == pattern(size, seed).as_slice();
        ensure(ok, || "mapped bytes differ from the host's pattern".into())
    });
    r.check("truncate and extend a mapped file", || {
        let path = dir.join("dax-trunc.bin");
        let size = 8 << 20;
        let f = rw(&path)?;
        f.set_len(size as u64).map_err(|e| e.to_string())?;
        let m = Map::new(&f, size)?;
        let data = pattern(size, 23);
        m.write(0, &data);
        m.msync()?;
        f.set_len(1 << 20).map_err(|e| e.to_string())?;
        f.set_len(size as u64).map_err(|e| e.to_string())?;
        ensure(m.bytes(0, 1 << 20) == data[..1 << 20], || {
            "first MiB changed".into()
        })?;
        ensure(m.bytes(1 << 20, 4096).iter().all(|b| *b == 0), || {
            "extended range not zero".into()
        })?;
        ensure(m.bytes(size - 4096, 4096).iter().all(|b| *b == 0), || {
            "tail not zero".into()
        })?;
        m.write(size - 5, b"tail!");
        m.msync()?;
        let back = std::fs::read(&path).map_err(|e| e.to_string())?;
        ensure(back.len() == size && &back[size - 5..] == b"tail!", || {
            "write after extend lost".into()
        })?;
        std::fs::remove_file(&path).map_err(|e| e.to_string())
    });
    r.finish("dax")
}

/// `checker statx-dax PATH yes|no`.
pub fn statx_dax(path: &Path, want: bool) -> std::process::ExitCode {
    let mut r = Report::default();
    r.check(
        &format!(
            "statx-dax {} {}",
            path.display(),
            if want { "yes" } else { "no" }
        ),
        || {
            let got = is_dax(path)?;
            ensure(got == want, || format!("STATX_ATTR_DAX is {got}"))
        },
    );
    r.finish("statx-dax")
}

/// `checker dax-hold FILE READY GO`: maps FILE and reads it, creates READY, waits for GO
/// (the host truncates FILE meanwhile), then reads the mapping again (the host-truncation
/// hazard of docs/dax.md).
pub fn hold(file: &Path, ready: &Path, go: &Path) -> std::process::ExitCode {
    let res = (|| -> CheckResult {
        let f = File::open(file).map_err(|e| e.to_string())?;
        let len = f.metadata().map_err(|e| e.to_string())?.len() as usize;
        let m = Map::read_only(&f, len)?;
        let bytes = m.as_slice();
        let sum: u64 = bytes.iter().map(|b| u64::from(*b)).sum();
        println!("checker: dax-hold mapped {len} bytes, sum {sum}");
        std::fs::write(ready, b"").map_err(|e| e.to_string())?;
        while !go.exists() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        println!("checker: dax-hold reading the mapping after the host truncated the file");
        let sum: u64 = bytes.iter().map(|b| u64::from(*b)).sum();
        println!("checker: dax-hold survived, sum {sum}");
        Ok(())
    })();
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            println!("checker: FAIL dax-hold: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
