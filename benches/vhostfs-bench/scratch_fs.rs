//! Where the share lives unless `--dir` says otherwise: an ext4 file system with a journal,
//! made by the bench in a sparse file on tmpfs and mounted through a loop device.
//!
//! The machine's own disk is not a fair place to measure daemons on: the root file system
//! of these machines is ext4 without a journal, and such an ext4 skips, when it allocates an
//! inode, every inode deleted in the last 305 seconds whose inode table block is still dirty
//! (`recently_deleted` in fs/ext4/ialloc.c; with a journal it does not look). The create
//! workload deletes tens of thousands of inodes a round, so each CREATE scanned more of them
//! as the run went on: `perf` put over 70% of the daemon's time under `recently_deleted`, and
//! create-release-unlink ratios spanned 0.10-4.87 within one run. On a journaled ext4, as
//! hosts use, the same comparison spans 1.43-1.62. tmpfs keeps disk noise out of the run.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Inodes made besides the inode table's files: the share's other trees and the create
/// workload's churn.
const SPARE_INODES: usize = 200_000;
/// Size of the sparse image: room for the data files and the inode tables (only what is
/// written takes memory).
const IMAGE_BYTES: u64 = 8 << 30;

/// A mounted scratch file system; unmounted and deleted when dropped.
pub struct ScratchFs {
    mountpoint: PathBuf,
    image: PathBuf,
}

impl ScratchFs {
    /// Makes and mounts the file system under `work`, with room for `inodes` files in the
    /// inode table; why not, when it cannot (no loop device, no mkfs.ext4, not root).
    pub fn mount(work: &Path, inodes: usize) -> Result<Self, String> {
        let image = Path::new("/dev/shm").join(format!("vhostfs-bench-{}.img", std::process::id()));
        File::create(&image)
            .and_then(|f| f.set_len(IMAGE_BYTES))
            .map_err(|e| format!("create {}: {e}", image.display()))?;
        let mountpoint = work.join("fs");
        let fs = Self { mountpoint, image };
        fs::create_dir_all(&fs.mountpoint).map_err(|e| format!("create the mountpoint: {e}"))?;
        let n = (inodes + SPARE_INODES).to_string();
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-N", &n])
            .arg(&fs.image))?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&fs.image)
            .arg(&fs.mountpoint))?;
        Ok(fs)
    }

    /// Where the file system is mounted.
    pub fn root(&self) -> &Path {
        &self.mountpoint
    }
}

impl Drop for ScratchFs {
    fn drop(&mut self) {
        // The loop device goes with the last unmount (mount -o loop sets autoclear).
        if let Err(e) = run(Command::new("umount").arg(&self.mountpoint)) {
            eprintln!("vhostfs-bench: {e}");
        }
        let _ = fs::remove_file(&self.image);
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
