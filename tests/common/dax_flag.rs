//! The host inode flag FS_DAX_FL (`chattr +x`) that `--dax-policy attr` follows, and a
//! directory on a filesystem that keeps it.
//!
//! ext4 and xfs keep the flag (with or without DAX hardware: it is only a hint for the page
//! cache), tmpfs and overlayfs do not. [`DaxFlagDir::new`] uses a fresh temporary directory
//! when its filesystem keeps the flag, else (as root) an ext4 image mounted through a loop
//! device, else it says why the test is skipped. `VHOSTFSD_REQUIRE_DAX_FLAG=1` (set by
//! `scripts/test.sh`, so in CI) turns that skip into a failure.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// `FS_DAX_FL`, as `lsattr` shows it (`x`).
pub const FS_DAX_FL: libc::c_int = 0x0200_0000;
/// `_IOR('f', 1, long)`.
const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
/// `_IOW('f', 2, long)`.
const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;

fn get_flags(f: &File) -> io::Result<libc::c_int> {
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int through the pointer, which points to `flags`,
    // alive and writable for the whole call.
    if unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_GETFLAGS, &mut flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags)
}

/// Whether `path` carries FS_DAX_FL (panics where the flags cannot be read).
pub fn dax_flag(path: &Path) -> bool {
    let f = File::open(path).expect("open to read the inode flags");
    get_flags(&f).expect("FS_IOC_GETFLAGS") & FS_DAX_FL != 0
}

/// Sets (`on`) or clears FS_DAX_FL on `path` (a file or a directory), as `chattr [+-]x` does.
///
/// # Errors
/// The ioctl's errno: `EOPNOTSUPP`/`ENOTTY`/`EINVAL` where the filesystem has no such flag.
pub fn set_dax_flag(path: &Path, on: bool) -> io::Result<()> {
    let f = File::open(path)?;
    let mut flags = get_flags(&f)?;
    if on {
        flags |= FS_DAX_FL;
    } else {
        flags &= !FS_DAX_FL;
    }
    // SAFETY: FS_IOC_SETFLAGS reads one int through the pointer, which points to `flags`.
    if unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_SETFLAGS, &flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // A filesystem may accept the call and drop the flag: read it back.
    if (get_flags(&f)? & FS_DAX_FL != 0) != on {
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    Ok(())
}

/// A directory whose filesystem keeps FS_DAX_FL, removed (and unmounted) on drop.
pub struct DaxFlagDir {
    dir: PathBuf,
    /// The loop-mounted ext4 image's mount point, when the temporary directory's
    /// filesystem does not keep the flag.
    mounted: Option<PathBuf>,
    _tmp: TempDir,
}

impl DaxFlagDir {
    /// A directory that keeps FS_DAX_FL, or `None` (the test is then skipped, and says why).
    pub fn new() -> Option<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("vhostfsd-daxflag")
            .tempdir()
            .expect("create the test directory");
        let probe = tmp.path().join("probe");
        File::create(&probe).expect("create the probe file");
        let why = match set_dax_flag(&probe, true) {
            Ok(()) => {
                std::fs::remove_file(&probe).expect("remove the probe file");
                let dir = tmp.path().join("shared");
                std::fs::create_dir(&dir).expect("create the shared directory");
                return Some(Self {
                    dir,
                    mounted: None,
                    _tmp: tmp,
                });
            }
            Err(e) => format!("{} does not keep FS_DAX_FL ({e})", tmp.path().display()),
        };
        match loop_ext4(tmp.path()) {
            Ok(mnt) => Some(Self {
                dir: mnt.clone(),
                mounted: Some(mnt),
                _tmp: tmp,
            }),
            Err(e) => {
                let msg = format!(
                    "{why}, and no ext4 loop image could be mounted instead ({e}): this test \
                     needs root and mkfs.ext4, or TMPDIR on ext4/xfs"
                );
                assert!(
                    std::env::var_os("VHOSTFSD_REQUIRE_DAX_FLAG").is_none(),
                    "VHOSTFSD_REQUIRE_DAX_FLAG is set: {msg}"
                );
                eprintln!("SKIPPED: {msg}");
                None
            }
        }
    }

    /// The directory (to share).
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for DaxFlagDir {
    fn drop(&mut self) {
        if let Some(mnt) = &self.mounted {
            // Lazy: the daemon may still hold the directory open while it is killed.
            let _ = Command::new("umount").arg("-l").arg(mnt).status();
        }
    }
}

/// Makes a small ext4 image in `scratch` and mounts it through a loop device.
fn loop_ext4(scratch: &Path) -> Result<PathBuf, String> {
    if !super::is_root() {
        return Err("not root".into());
    }
    let image = scratch.join("ext4.img");
    File::create(&image)
        .and_then(|f| f.set_len(32 << 20))
        .map_err(|e| format!("create {}: {e}", image.display()))?;
    let mnt = scratch.join("mnt");
    std::fs::create_dir(&mnt).map_err(|e| e.to_string())?;
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))?;
    run(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(&mnt))?;
    Ok(mnt)
}
