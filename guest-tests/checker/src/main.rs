//! Guest-side checker for the vhostfsd guest tests.
//!
//! Runs inside the test VM (static binary in the initramfs) against the virtio-fs mount and
//! checks what busybox cannot: xattrs, mmap + msync, unlink of an open file, renameat2 flags,
//! a 10,000-entry directory, utimes with nanoseconds, truncate, chown, and EROFS on a read-only
//! export. Every check prints one line (`ok`, `FAIL` or `skip`); the exit status is non-zero if
//! any check failed.
//!
//! ```text
//! checker semantics DIR [--xattr] [--cache auto|never|always] [--allow-mmap]
//! checker erofs DIR [--xattr]
//! checker locks DIR [--expect]
//! checker pattern write|verify PATH SIZE SEED
//! checker dax DIR
//! checker statx-dax PATH yes|no
//! checker dax-hold FILE READY GO
//! ```
//!
//! `semantics` leaves files under `DIR/host-check/` that the host side verifies after the VM is
//! gone (owner, mode, times, xattr, content); `pattern` writes the byte stream the host runner
//! regenerates (`splitmix64(seed + i)`, little endian, per 8-byte word).

mod dax;

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

type CheckResult = Result<(), String>;

/// Counts and prints check outcomes.
#[derive(Default)]
struct Report {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Report {
    fn check(&mut self, name: &str, f: impl FnOnce() -> CheckResult) {
        let t0 = std::time::Instant::now();
        let res = f();
        let ms = t0.elapsed().as_millis();
        match res {
            Ok(()) => {
                self.passed += 1;
                println!("checker: ok   {name} ({ms} ms)");
            }
            Err(e) if e.starts_with("skip:") => {
                self.skipped += 1;
                println!("checker: skip {name}: {}", &e[5..]);
            }
            Err(e) => {
                self.failed += 1;
                println!("checker: FAIL {name}: {e} ({ms} ms)");
            }
        }
    }

    fn finish(&self, what: &str) -> ExitCode {
        println!(
            "checker: {what}: {} ok, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        );
        if self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errname(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EACCES => "EACCES",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENODATA => "ENODATA",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::E2BIG => "E2BIG",
        libc::ERANGE => "ERANGE",
        libc::EAGAIN => "EAGAIN",
        0 => "success",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

/// Turns a libc return value into a Result carrying a readable message.
fn sys(what: &str, ret: libc::c_long) -> Result<libc::c_long, String> {
    if ret < 0 {
        Err(format!("{what}: {}", errname(errno())))
    } else {
        Ok(ret)
    }
}

/// Expects a libc call to fail with `want` (any of them).
fn expect_err(what: &str, ret: libc::c_long, want: &[i32]) -> CheckResult {
    if ret >= 0 {
        return Err(format!("{what}: succeeded, expected {}", errname(want[0])));
    }
    let e = errno();
    if want.contains(&e) {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {}, expected {}",
            errname(e),
            errname(want[0])
        ))
    }
}

fn io_err<T>(what: &str) -> impl FnOnce(io::Error) -> Result<T, String> + '_ {
    move |e| Err(format!("{what}: {e}"))
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> CheckResult {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The deterministic test pattern the host runner regenerates.
fn pattern(size: usize, seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(size + 8);
    let mut i = 0u64;
    while v.len() < size {
        v.extend_from_slice(&splitmix64(seed.wrapping_add(i)).to_le_bytes());
        i += 1;
    }
    v.truncate(size);
    v
}

fn write_file(p: &Path, data: &[u8]) -> CheckResult {
    fs::write(p, data).or_else(io_err(&format!("write {}", p.display())))
}

fn read_file(p: &Path) -> Result<Vec<u8>, String> {
    fs::read(p).or_else(io_err(&format!("read {}", p.display())))
}

fn statx_times(p: &Path) -> Result<libc::stat, String> {
    // SAFETY: stat is plain old data; all-zero is a valid value that stat() overwrites.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let c = cpath(p);
    // SAFETY: c is a valid NUL-terminated path and st a valid, writable stat buffer.
    sys("stat", unsafe { libc::stat(c.as_ptr(), &mut st) } as _)?;
    Ok(st)
}

// ----------------------------------------------------------------------------------------------
// semantics

struct Opts {
    xattr: bool,
    cache: String,
    /// The daemon runs with --allow-mmap: shared mmap must work even with --cache=never.
    allow_mmap: bool,
}

fn semantics(dir: &Path, o: &Opts) -> ExitCode {
    let mut r = Report::default();
    let base = dir.join("semantics");
    let host = dir.join("host-check");
    let _ = fs::remove_dir_all(&base);
    let _ = fs::remove_dir_all(&host);
    if let Err(e) = fs::create_dir_all(&base).and_then(|_| fs::create_dir_all(&host)) {
        println!("checker: FAIL setup: mkdir {}: {e}", base.display());
        return ExitCode::FAILURE;
    }
    let b = base.as_path();

    r.check("create, write, read back", || {
        let p = b.join("plain");
        let data = pattern(300_000, 1);
        write_file(&p, &data)?;
        ensure(read_file(&p)? == data, || "content differs".into())?;
        let md = fs::metadata(&p).or_else(io_err("stat"))?;
        ensure(md.len() == 300_000, || {
            format!("size {} != 300000", md.len())
        })
    });

    r.check("O_CREAT|O_EXCL on an existing file is EEXIST", || {
        let p = b.join("excl");
        write_file(&p, b"x")?;
        let c = cpath(&p);
        // SAFETY: c is a valid NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                0o644,
            )
        };
        expect_err("open", fd as _, &[libc::EEXIST])
    });

    r.check("pwrite past EOF leaves a zero-filled hole", || {
        let p = b.join("sparse");
        let f = File::create(&p).or_else(io_err("create"))?;
        let c = b"tail";
        sys(
            "pwrite",
            // SAFETY: f is an open fd, c a valid buffer of c.len() bytes.
            unsafe { libc::pwrite(f.as_raw_fd(), c.as_ptr().cast(), c.len(), 1 << 20) } as _,
        )?;
        drop(f);
        let d = read_file(&p)?;
        ensure(d.len() == (1 << 20) + 4, || format!("size {}", d.len()))?;
        ensure(
            d[..1 << 20].iter().all(|&x| x == 0) && &d[1 << 20..] == b"tail",
            || "hole not zero or tail wrong".into(),
        )
    });

    r.check("O_APPEND writes go to the end", || {
        let p = b.join("append");
        write_file(&p, b"one\n")?;
        let mut f = OpenOptions::new()
            .append(true)
            .open(&p)
            .or_else(io_err("open"))?;
        f.write_all(b"two\n").or_else(io_err("write"))?;
        drop(f);
        ensure(read_file(&p)? == b"one\ntwo\n", || "content differs".into())
    });

    r.check("truncate up (zero fill) and down", || {
        let p = b.join("trunc");
        let data = pattern(100, 2);
        write_file(&p, &data)?;
        let f = OpenOptions::new()
            .write(true)
            .open(&p)
            .or_else(io_err("open"))?;
        f.set_len(10_000).or_else(io_err("ftruncate up"))?;
        drop(f);
        let d = read_file(&p)?;
        ensure(
            d.len() == 10_000 && d[..100] == data[..] && d[100..].iter().all(|&x| x == 0),
            || format!("after truncate up: size {}", d.len()),
        )?;
        let c = cpath(&p);
        // SAFETY: c is a valid NUL-terminated path.
        sys("truncate down", unsafe { libc::truncate(c.as_ptr(), 50) }
            as _)?;
        let d = read_file(&p)?;
        ensure(d.len() == 50 && d[..] == data[..50], || {
            format!("after truncate down: size {}", d.len())
        })?;
        // Truncating through an fd opened O_TRUNC.
        drop(
            OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&p)
                .or_else(io_err("open O_TRUNC"))?,
        );
        let n = fs::metadata(&p).or_else(io_err("stat"))?.len();
        ensure(n == 0, || format!("after O_TRUNC: size {n}"))
    });

    r.check("unlink an open file, read through the fd", || {
        let p = b.join("unlinked");
        let data = pattern(70_000, 3);
        write_file(&p, &data)?;
        let mut f = File::open(&p).or_else(io_err("open"))?;
        fs::remove_file(&p).or_else(io_err("unlink"))?;
        ensure(fs::symlink_metadata(&p).is_err(), || {
            "name still present after unlink".into()
        })?;
        let mut d = Vec::new();
        f.read_to_end(&mut d).or_else(io_err("read after unlink"))?;
        ensure(d == data, || "content read after unlink differs".into())?;
        let md = f.metadata().or_else(io_err("fstat"))?;
        ensure(md.nlink() == 0, || {
            format!("nlink {} after unlink", md.nlink())
        })
    });

    r.check("write to an unlinked open file", || {
        let p = b.join("unlinked-rw");
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .or_else(io_err("open"))?;
        fs::remove_file(&p).or_else(io_err("unlink"))?;
        f.write_all(b"still here").or_else(io_err("write"))?;
        f.seek(SeekFrom::Start(0)).or_else(io_err("seek"))?;
        let mut s = String::new();
        f.read_to_string(&mut s).or_else(io_err("read"))?;
        ensure(s == "still here", || format!("read {s:?}"))
    });

    r.check("rename over an existing file", || {
        let a = b.join("ren-a");
        let bb = b.join("ren-b");
        write_file(&a, b"from a")?;
        write_file(&bb, b"old b")?;
        let keep = File::open(&bb).or_else(io_err("open old b"))?;
        fs::rename(&a, &bb).or_else(io_err("rename"))?;
        ensure(fs::symlink_metadata(&a).is_err(), || {
            "source still exists".into()
        })?;
        ensure(read_file(&bb)? == b"from a", || {
            "target content is not the source's".into()
        })?;
        let mut s = String::new();
        (&keep)
            .read_to_string(&mut s)
            .or_else(io_err("read old b via fd"))?;
        ensure(s == "old b", || {
            format!("replaced file read through old fd: {s:?}")
        })
    });

    r.check("renameat2 RENAME_NOREPLACE", || {
        let a = b.join("nr-a");
        let bb = b.join("nr-b");
        let c = b.join("nr-c");
        write_file(&a, b"a")?;
        write_file(&bb, b"b")?;
        expect_err(
            "onto existing",
            renameat2(&a, &bb, libc::RENAME_NOREPLACE),
            &[libc::EEXIST],
        )?;
        ensure(read_file(&bb)? == b"b", || "target changed".into())?;
        sys("onto new name", renameat2(&a, &c, libc::RENAME_NOREPLACE))?;
        ensure(
            read_file(&c)? == b"a" && fs::symlink_metadata(&a).is_err(),
            || "not moved".into(),
        )
    });

    r.check("renameat2 RENAME_EXCHANGE (file <-> dir)", || {
        let a = b.join("ex-a");
        let d = b.join("ex-d");
        write_file(&a, b"file a")?;
        fs::create_dir(&d).or_else(io_err("mkdir"))?;
        write_file(&d.join("inner"), b"inner")?;
        sys("exchange", renameat2(&a, &d, libc::RENAME_EXCHANGE))?;
        ensure(read_file(&d)? == b"file a", || {
            "ex-d is not the file".into()
        })?;
        ensure(read_file(&a.join("inner"))? == b"inner", || {
            "ex-a is not the dir".into()
        })?;
        expect_err(
            "exchange with missing",
            renameat2(&a, &b.join("ex-missing"), libc::RENAME_EXCHANGE),
            &[libc::ENOENT],
        )
    });

    r.check("mmap MAP_SHARED write, msync, read back", || {
        mmap_check(b, &o.cache, o.allow_mmap)
    });

    r.check("utimensat with nanoseconds, UTIME_OMIT", || {
        let p = b.join("times");
        write_file(&p, b"t")?;
        set_times(
            &p,
            (1_000_000_000, 123_456_789),
            (1_234_567_890, 987_654_321),
        )?;
        let st = statx_times(&p)?;
        ensure(
            (st.st_atime, st.st_atime_nsec, st.st_mtime, st.st_mtime_nsec)
                == (1_000_000_000, 123_456_789, 1_234_567_890, 987_654_321),
            || {
                format!(
                    "atime {}.{} mtime {}.{}",
                    st.st_atime, st.st_atime_nsec, st.st_mtime, st.st_mtime_nsec
                )
            },
        )?;
        set_times(&p, (0, libc::UTIME_OMIT), (1_500_000_000, 5))?;
        let st = statx_times(&p)?;
        ensure(
            (st.st_atime, st.st_atime_nsec, st.st_mtime, st.st_mtime_nsec)
                == (1_000_000_000, 123_456_789, 1_500_000_000, 5),
            || {
                format!(
                    "after UTIME_OMIT: atime {}.{} mtime {}.{}",
                    st.st_atime, st.st_atime_nsec, st.st_mtime, st.st_mtime_nsec
                )
            },
        )
    });

    r.check("chown and chmod", || {
        let p = b.join("owned");
        write_file(&p, b"o")?;
        let c = cpath(&p);
        // SAFETY: c is a valid NUL-terminated path.
        sys("chown", unsafe { libc::chown(c.as_ptr(), 1234, 5678) } as _)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).or_else(io_err("chmod"))?;
        let md = fs::metadata(&p).or_else(io_err("stat"))?;
        ensure(
            (md.uid(), md.gid(), md.mode() & 0o7777) == (1234, 5678, 0o640),
            || {
                format!(
                    "uid {} gid {} mode {:o}",
                    md.uid(),
                    md.gid(),
                    md.mode() & 0o7777
                )
            },
        )?;
        // chown of a setuid file clears the setuid bit (kill_suidgid).
        fs::set_permissions(&p, fs::Permissions::from_mode(0o4755)).or_else(io_err("chmod u+s"))?;
        // SAFETY: as above.
        sys("chown", unsafe { libc::chown(c.as_ptr(), 4321, 5678) } as _)?;
        let md = fs::metadata(&p).or_else(io_err("stat"))?;
        ensure(md.mode() & 0o4000 == 0, || {
            format!("setuid kept after chown: mode {:o}", md.mode() & 0o7777)
        })
    });

    r.check("hard link and symlink", || {
        let a = b.join("link-a");
        let l = b.join("link-b");
        let s = b.join("sym");
        write_file(&a, b"linked")?;
        fs::hard_link(&a, &l).or_else(io_err("link"))?;
        let (ma, ml) = (
            fs::metadata(&a).or_else(io_err("stat"))?,
            fs::metadata(&l).or_else(io_err("stat"))?,
        );
        ensure(ma.ino() == ml.ino() && ma.nlink() == 2, || {
            format!("ino {} vs {}, nlink {}", ma.ino(), ml.ino(), ma.nlink())
        })?;
        std::os::unix::fs::symlink("link-a", &s).or_else(io_err("symlink"))?;
        let t = fs::read_link(&s).or_else(io_err("readlink"))?;
        ensure(t == Path::new("link-a"), || {
            format!("readlink {}", t.display())
        })?;
        ensure(read_file(&s)? == b"linked", || {
            "read through symlink".into()
        })
    });

    r.check("mkdir, rmdir, ENOTEMPTY, mknod fifo", || {
        let d = b.join("dir");
        fs::create_dir(&d).or_else(io_err("mkdir"))?;
        write_file(&d.join("f"), b"")?;
        let c = cpath(&d);
        expect_err(
            "rmdir non-empty",
            // SAFETY: c is a valid NUL-terminated path.
            unsafe { libc::rmdir(c.as_ptr()) } as _,
            &[libc::ENOTEMPTY, libc::EEXIST],
        )?;
        fs::remove_file(d.join("f")).or_else(io_err("unlink"))?;
        fs::remove_dir(&d).or_else(io_err("rmdir"))?;
        let f = cpath(&b.join("fifo"));
        // SAFETY: f is a valid NUL-terminated path.
        sys("mkfifo", unsafe { libc::mkfifo(f.as_ptr(), 0o600) } as _)?;
        let md = fs::symlink_metadata(b.join("fifo")).or_else(io_err("stat"))?;
        ensure(md.mode() & libc::S_IFMT == libc::S_IFIFO, || {
            format!("mode {:o}", md.mode())
        })
    });

    r.check("fsync, fdatasync, statfs", || {
        let p = b.join("synced");
        let f = File::create(&p).or_else(io_err("create"))?;
        (&f).write_all(b"sync").or_else(io_err("write"))?;
        f.sync_all().or_else(io_err("fsync"))?;
        f.sync_data().or_else(io_err("fdatasync"))?;
        // SAFETY: statfs is plain old data; zeroed is valid and overwritten.
        let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: f is open, sf a valid writable buffer.
        sys("fstatfs", unsafe { libc::fstatfs(f.as_raw_fd(), &mut sf) }
            as _)?;
        ensure(sf.f_blocks > 0 && sf.f_bsize > 0, || {
            format!("f_blocks {} f_bsize {}", sf.f_blocks, sf.f_bsize)
        })
    });

    r.check("10,000-entry directory listed completely", || {
        big_dir(b, 10_000)
    });

    r.check("xattr set/get/list/remove", || xattr_check(b, o.xattr));

    // Artifacts for the host side (runner.py verifies them once the VM is gone).
    r.check("leave files for the host to verify", || {
        let p = host.join("owned");
        write_file(&p, b"owned by 1234:5678\n")?;
        let c = cpath(&p);
        // SAFETY: c is a valid NUL-terminated path.
        sys("chown", unsafe { libc::chown(c.as_ptr(), 1234, 5678) } as _)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).or_else(io_err("chmod"))?;
        set_times(
            &p,
            (1_000_000_000, 123_456_789),
            (1_234_567_890, 987_654_321),
        )?;
        write_file(&host.join("pattern.bin"), &pattern((1 << 20) + 123, 42))?;
        write_file(&host.join("gone"), b"old")?;
        write_file(&host.join("renamed.tmp"), b"renamed\n")?;
        fs::rename(host.join("renamed.tmp"), host.join("gone")).or_else(io_err("rename"))?;
        fs::rename(host.join("gone"), host.join("renamed")).or_else(io_err("rename"))?;
        std::os::unix::fs::symlink("target-of-symlink", host.join("symlink"))
            .or_else(io_err("symlink"))?;
        write_file(&host.join("hardlink-a"), b"hl\n")?;
        fs::hard_link(host.join("hardlink-a"), host.join("hardlink-b")).or_else(io_err("link"))?;
        write_file(&host.join("truncated"), &pattern(5000, 7))?;
        let c = cpath(&host.join("truncated"));
        // SAFETY: c is a valid NUL-terminated path.
        sys("truncate", unsafe { libc::truncate(c.as_ptr(), 3000) } as _)?;
        if o.xattr {
            write_file(&host.join("xattr"), b"x\n")?;
            setxattr(&host.join("xattr"), "user.vhostfsd", b"from-guest", 0)?;
        }
        Ok(())
    });

    r.finish("semantics")
}

fn renameat2(a: &Path, b: &Path, flags: libc::c_uint) -> libc::c_long {
    let (ca, cb) = (cpath(a), cpath(b));
    // SAFETY: both are valid NUL-terminated paths; renameat2 takes (int, char*, int, char*, uint).
    unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            flags,
        )
    }
}

fn set_times(p: &Path, atime: (i64, i64), mtime: (i64, i64)) -> CheckResult {
    let ts = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    let c = cpath(p);
    sys(
        "utimensat",
        // SAFETY: c is a valid NUL-terminated path and ts an array of two timespecs.
        unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), 0) } as _,
    )?;
    Ok(())
}

fn mmap_check(b: &Path, cache: &str, allow_mmap: bool) -> CheckResult {
    const LEN: usize = 64 * 1024;
    let p = b.join("mmap");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .or_else(io_err("open"))?;
    f.set_len(LEN as u64).or_else(io_err("ftruncate"))?;
    // SAFETY: mapping a fresh region of LEN bytes of an open fd; the result is checked.
    let m = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    if m == libc::MAP_FAILED {
        let e = errno();
        if e == libc::ENODEV && cache == "never" && !allow_mmap {
            return Err("skip:shared writable mmap refused with ENODEV (cache=never, direct I/O without FUSE_DIRECT_IO_ALLOW_MMAP)".into());
        }
        return Err(format!("mmap: {}", errname(e)));
    }
    let data = pattern(LEN, 4);
    // SAFETY: m points to LEN mapped writable bytes; data has LEN bytes.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), m.cast::<u8>(), LEN) };
    // SAFETY: m/LEN is the mapping made above.
    sys("msync", unsafe { libc::msync(m, LEN, libc::MS_SYNC) } as _)?;
    // SAFETY: m/LEN is the mapping made above, unmapped once.
    sys("munmap", unsafe { libc::munmap(m, LEN) } as _)?;
    drop(f);
    // Read back with read(2) through a new open file (O_DIRECT bypasses the guest page cache).
    ensure(read_file(&p)? == data, || {
        "read(2) after msync differs".into()
    })?;
    let mut fd = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&p)
        .or_else(io_err("open O_DIRECT"))?;
    let mut buf = vec![0u8; LEN + 4096];
    let off = buf.as_ptr().align_offset(4096);
    let n = fd
        .read(&mut buf[off..off + LEN])
        .or_else(io_err("O_DIRECT read"))?;
    ensure(n == LEN && buf[off..off + LEN] == data[..], || {
        format!("O_DIRECT read after msync differs ({n} bytes)")
    })
}

fn big_dir(b: &Path, n: usize) -> CheckResult {
    let d = b.join("big");
    fs::create_dir(&d).or_else(io_err("mkdir"))?;
    for i in 0..n {
        // Long-ish names so the listing needs many READDIR round trips.
        File::create(d.join(format!("entry-{i:05}-abcdefghijklmnopqrstuvwxyz")))
            .or_else(io_err("create"))?;
    }
    let mut seen = HashSet::new();
    let mut dups = 0;
    for e in fs::read_dir(&d).or_else(io_err("opendir"))? {
        let e = e.or_else(io_err("readdir"))?;
        if !seen.insert(e.file_name()) {
            dups += 1;
        }
    }
    ensure(seen.len() == n && dups == 0, || {
        format!(
            "listed {} distinct entries ({dups} duplicates), expected {n}",
            seen.len()
        )
    })?;
    for i in 0..n {
        let name = format!("entry-{i:05}-abcdefghijklmnopqrstuvwxyz");
        ensure(seen.contains(std::ffi::OsStr::new(&name)), || {
            format!("{name} missing from the listing")
        })?;
    }
    // Remove while listing: every entry must still be seen exactly once overall.
    let mut removed = 0;
    for e in fs::read_dir(&d).or_else(io_err("opendir"))? {
        let e = e.or_else(io_err("readdir"))?;
        fs::remove_file(e.path()).or_else(io_err("unlink"))?;
        removed += 1;
    }
    let left = fs::read_dir(&d).or_else(io_err("opendir"))?.count();
    ensure(removed == n && left == 0, || {
        format!("removed {removed} while listing, {left} left")
    })?;
    fs::remove_dir(&d).or_else(io_err("rmdir"))
}

fn setxattr(p: &Path, name: &str, val: &[u8], flags: i32) -> CheckResult {
    let (c, n) = (cpath(p), CString::new(name).unwrap());
    // SAFETY: c and n are valid NUL-terminated strings; val is val.len() readable bytes.
    sys("setxattr", unsafe {
        libc::setxattr(
            c.as_ptr(),
            n.as_ptr(),
            val.as_ptr().cast(),
            val.len(),
            flags,
        )
    } as _)?;
    Ok(())
}

fn raw_setxattr(p: &Path, name: &str, val: &[u8], flags: i32) -> libc::c_long {
    let (c, n) = (cpath(p), CString::new(name).unwrap());
    // SAFETY: c and n are valid NUL-terminated strings; val is val.len() readable bytes.
    unsafe {
        libc::setxattr(
            c.as_ptr(),
            n.as_ptr(),
            val.as_ptr().cast(),
            val.len(),
            flags,
        ) as _
    }
}

fn getxattr(p: &Path, name: &str) -> Result<Vec<u8>, (i32, String)> {
    let (c, n) = (cpath(p), CString::new(name).unwrap());
    let mut buf = vec![0u8; 4096];
    // SAFETY: c and n are valid NUL-terminated strings; buf has buf.len() writable bytes.
    let r = unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        let e = errno();
        return Err((e, format!("getxattr {name}: {}", errname(e))));
    }
    buf.truncate(r as usize);
    Ok(buf)
}

fn listxattr(p: &Path) -> Result<Vec<String>, String> {
    let c = cpath(p);
    // SAFETY: c is a valid path; a null buffer with size 0 asks for the needed size.
    let need = sys(
        "listxattr size",
        unsafe { libc::listxattr(c.as_ptr(), std::ptr::null_mut(), 0) } as _,
    )? as usize;
    let mut buf = vec![0u8; need.max(1)];
    // SAFETY: buf has buf.len() writable bytes.
    let r =
        sys(
            "listxattr",
            unsafe { libc::listxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) } as _,
        )? as usize;
    buf.truncate(r);
    Ok(buf
        .split(|&x| x == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

fn xattr_check(b: &Path, enabled: bool) -> CheckResult {
    let p = b.join("xattrs");
    write_file(&p, b"x")?;
    if !enabled {
        // The daemon answers ENOSYS (or EOPNOTSUPP); the kernel reports EOPNOTSUPP.
        return expect_err(
            "setxattr without --xattr",
            raw_setxattr(&p, "user.a", b"1", 0),
            &[libc::EOPNOTSUPP],
        );
    }
    setxattr(&p, "user.one", b"first value", 0)?;
    let big = pattern(3000, 5);
    setxattr(&p, "user.two", &big, 0)?;
    ensure(
        getxattr(&p, "user.one").map_err(|e| e.1)? == b"first value",
        || "user.one value".into(),
    )?;
    ensure(getxattr(&p, "user.two").map_err(|e| e.1)? == big, || {
        "user.two value".into()
    })?;
    let names = listxattr(&p)?;
    ensure(
        names.iter().any(|n| n == "user.one") && names.iter().any(|n| n == "user.two"),
        || format!("listxattr: {names:?}"),
    )?;
    expect_err(
        "XATTR_CREATE on existing",
        raw_setxattr(&p, "user.one", b"x", libc::XATTR_CREATE),
        &[libc::EEXIST],
    )?;
    expect_err(
        "XATTR_REPLACE on missing",
        raw_setxattr(&p, "user.none", b"x", libc::XATTR_REPLACE),
        &[libc::ENODATA],
    )?;
    setxattr(&p, "user.one", b"replaced", libc::XATTR_REPLACE)?;
    ensure(
        getxattr(&p, "user.one").map_err(|e| e.1)? == b"replaced",
        || "user.one after replace".into(),
    )?;
    let (c, n) = (cpath(&p), CString::new("user.one").unwrap());
    sys(
        "removexattr",
        // SAFETY: both valid NUL-terminated strings.
        unsafe { libc::removexattr(c.as_ptr(), n.as_ptr()) } as _,
    )?;
    match getxattr(&p, "user.one") {
        Err((e, _)) if e == libc::ENODATA => {}
        Err((_, m)) => return Err(format!("after removexattr: {m}")),
        Ok(_) => return Err("user.one still present after removexattr".into()),
    }
    // A directory's xattr, and a write clearing nothing it should not.
    setxattr(b, "user.dir", b"d", 0)?;
    ensure(getxattr(b, "user.dir").map_err(|e| e.1)? == b"d", || {
        "dir xattr".into()
    })
}

// ----------------------------------------------------------------------------------------------
// locks

/// Locks the host holds during the boot (runner.py HostActor): a POSIX write lock on
/// `DIR/posix` and a flock on `DIR/flock`. A daemon that serves locks on the host makes the guest
/// see them; without that, the guest kernel locks locally and never sees the host's.
fn locks(dir: &Path, expect: bool) -> ExitCode {
    let mut r = Report::default();
    let missing = |what: &str| -> CheckResult {
        if expect {
            Err(format!(
                "{what} succeeded although the host holds a conflicting lock"
            ))
        } else {
            Err(format!(
                "skip:{what} succeeded: the daemon does not serve host locks (guest-local locking)"
            ))
        }
    };
    r.check(
        "host POSIX lock conflicts in the guest (F_SETLK, F_GETLK)",
        || {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(dir.join("posix"))
                .or_else(io_err("open"))?;
            // SAFETY: flock is plain old data; zeroed is valid.
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = libc::F_WRLCK as _;
            fl.l_whence = libc::SEEK_SET as _;
            // SAFETY: f is open and fl a valid flock.
            let ret = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) };
            if ret == 0 {
                return missing("F_SETLK");
            }
            expect_err("F_SETLK", ret as _, &[libc::EAGAIN, libc::EACCES])?;
            sys(
                "F_GETLK",
                // SAFETY: as above.
                unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) } as _,
            )?;
            ensure(fl.l_type == libc::F_WRLCK as _, || {
                format!("F_GETLK l_type {}", fl.l_type)
            })
        },
    );
    r.check(
        "host flock conflicts in the guest (LOCK_EX|LOCK_NB)",
        || {
            let f = File::open(dir.join("flock")).or_else(io_err("open"))?;
            // SAFETY: f is open.
            let ret = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if ret == 0 {
                return missing("flock");
            }
            expect_err("flock", ret as _, &[libc::EWOULDBLOCK])
        },
    );
    r.check("lock, unlock, relock a free file", || {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("free"))
            .or_else(io_err("open"))?;
        // SAFETY: flock is plain old data; zeroed is valid.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_whence = libc::SEEK_SET as _;
        for t in [libc::F_WRLCK, libc::F_UNLCK, libc::F_RDLCK, libc::F_UNLCK] {
            fl.l_type = t as _;
            sys(
                "F_SETLK",
                // SAFETY: f is open and fl a valid flock.
                unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) } as _,
            )?;
        }
        for op in [
            libc::LOCK_EX | libc::LOCK_NB,
            libc::LOCK_UN,
            libc::LOCK_SH | libc::LOCK_NB,
            libc::LOCK_UN,
        ] {
            // SAFETY: f is open.
            sys("flock", unsafe { libc::flock(f.as_raw_fd(), op) } as _)?;
        }
        Ok(())
    });
    r.finish("locks")
}

// ----------------------------------------------------------------------------------------------
// erofs

fn erofs(dir: &Path, xattr: bool) -> ExitCode {
    let mut r = Report::default();
    let file = dir.join("ro-file");
    let sub = dir.join("ro-dir");
    const ROFS: &[i32] = &[libc::EROFS];
    let c = |p: &Path| cpath(p);

    r.check("read a host-prepared file", || {
        let d = read_file(&file)?;
        ensure(!d.is_empty(), || "empty".into())
    });
    r.check("list a host-prepared directory", || {
        let n = fs::read_dir(&sub).or_else(io_err("opendir"))?.count();
        ensure(n > 0, || "empty listing".into())
    });
    r.check("open O_WRONLY existing is EROFS", || {
        // SAFETY: valid NUL-terminated path.
        expect_err(
            "open",
            unsafe { libc::open(c(&file).as_ptr(), libc::O_WRONLY) } as _,
            ROFS,
        )
    });
    r.check("open O_RDWR|O_TRUNC existing is EROFS", || {
        // SAFETY: valid NUL-terminated path.
        expect_err(
            "open",
            unsafe { libc::open(c(&file).as_ptr(), libc::O_RDWR | libc::O_TRUNC) } as _,
            ROFS,
        )
    });
    r.check("create is EROFS", || {
        // SAFETY: valid NUL-terminated path.
        expect_err(
            "open O_CREAT",
            unsafe {
                libc::open(
                    c(&dir.join("new")).as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY,
                    0o644,
                )
            } as _,
            ROFS,
        )
    });
    r.check("mkdir is EROFS", || {
        // SAFETY: valid NUL-terminated path.
        expect_err(
            "mkdir",
            unsafe { libc::mkdir(c(&dir.join("newdir")).as_ptr(), 0o755) } as _,
            ROFS,
        )
    });
    r.check("mknod fifo is EROFS", || {
        // SAFETY: valid NUL-terminated path.
        expect_err(
            "mkfifo",
            unsafe { libc::mkfifo(c(&dir.join("fifo")).as_ptr(), 0o644) } as _,
            ROFS,
        )
    });
    r.check("symlink is EROFS", || {
        // SAFETY: valid NUL-terminated paths.
        expect_err(
            "symlink",
            unsafe { libc::symlink(c(Path::new("x")).as_ptr(), c(&dir.join("sl")).as_ptr()) } as _,
            ROFS,
        )
    });
    r.check("link is EROFS", || {
        // SAFETY: valid NUL-terminated paths.
        expect_err(
            "link",
            unsafe { libc::link(c(&file).as_ptr(), c(&dir.join("hl")).as_ptr()) } as _,
            ROFS,
        )
    });
    r.check("unlink is EROFS", || {
        // SAFETY: valid NUL-terminated path.
        expect_err(
            "unlink",
            unsafe { libc::unlink(c(&file).as_ptr()) } as _,
            ROFS,
        )
    });
    r.check("rmdir is EROFS", || {
        // SAFETY: valid NUL-terminated path.
        expect_err(
            "rmdir",
            unsafe { libc::rmdir(c(&sub.join("empty")).as_ptr()) } as _,
            ROFS,
        )
    });
    r.check("rename is EROFS", || {
        // SAFETY: valid NUL-terminated paths.
        expect_err(
            "rename",
            unsafe { libc::rename(c(&file).as_ptr(), c(&dir.join("moved")).as_ptr()) } as _,
            ROFS,
        )
    });
    r.check("chmod is EROFS", || {
        // SAFETY: valid NUL-terminated path.
        expect_err(
            "chmod",
            unsafe { libc::chmod(c(&file).as_ptr(), 0o600) } as _,
            ROFS,
        )
    });
    r.check("chown is EROFS", || {
        // SAFETY: valid NUL-terminated path.
        expect_err(
            "chown",
            unsafe { libc::chown(c(&file).as_ptr(), 1, 1) } as _,
            ROFS,
        )
    });
    r.check("truncate is EROFS", || {
        // SAFETY: valid NUL-terminated path.
        expect_err(
            "truncate",
            unsafe { libc::truncate(c(&file).as_ptr(), 1) } as _,
            ROFS,
        )
    });
    r.check("utimensat is EROFS", || {
        match set_times(&file, (1, 0), (1, 0)) {
            Err(e) if e.ends_with("EROFS") => Ok(()),
            Err(e) => Err(e),
            Ok(()) => Err("utimensat succeeded".into()),
        }
    });
    r.check("setxattr is EROFS", || {
        // Without --xattr the daemon may refuse xattrs before looking at --readonly.
        let want: &[i32] = if xattr {
            ROFS
        } else {
            &[libc::EROFS, libc::EOPNOTSUPP]
        };
        expect_err("setxattr", raw_setxattr(&file, "user.x", b"1", 0), want)
    });
    r.finish("erofs")
}

// ----------------------------------------------------------------------------------------------

fn usage() -> ExitCode {
    eprintln!("usage: checker semantics DIR [--xattr] [--cache MODE] | erofs DIR [--xattr] | pattern write|verify PATH SIZE SEED");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let val = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match args.first().map(String::as_str) {
        Some("semantics") if args.len() >= 2 => {
            let o = Opts {
                xattr: flag("--xattr"),
                cache: val("--cache").unwrap_or_else(|| "auto".into()),
                allow_mmap: flag("--allow-mmap"),
            };
            semantics(&PathBuf::from(&args[1]), &o)
        }
        Some("dax") if args.len() == 2 => dax::dax(Path::new(&args[1])),
        Some("dax-hold") if args.len() == 4 => dax::hold(
            Path::new(&args[1]),
            Path::new(&args[2]),
            Path::new(&args[3]),
        ),
        Some("statx-dax") if args.len() == 3 => {
            dax::statx_dax(Path::new(&args[1]), args[2] == "yes")
        }
        Some("erofs") if args.len() >= 2 => erofs(&PathBuf::from(&args[1]), flag("--xattr")),
        Some("locks") if args.len() >= 2 => locks(&PathBuf::from(&args[1]), flag("--expect")),
        Some("pattern") if args.len() == 5 => {
            let (Ok(size), Ok(seed)) = (args[3].parse::<usize>(), args[4].parse::<u64>()) else {
                return usage();
            };
            let p = Path::new(&args[2]);
            let data = pattern(size, seed);
            let res = match args[1].as_str() {
                "write" => write_file(p, &data),
                "verify" => read_file(p).and_then(|d| {
                    ensure(d == data, || {
                        format!("{} differs from pattern", p.display())
                    })
                }),
                _ => return usage(),
            };
            match res {
                Ok(()) => {
                    println!("checker: ok   pattern {} {}", args[1], p.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("checker: FAIL pattern {} {}: {e}", args[1], p.display());
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}
