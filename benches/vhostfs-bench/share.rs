//! The shared directory every daemon serves, and what the host knows about it (inode
//! numbers, sizes, contents) to check each reply against.
//!
//! File contents follow one pattern: the 8 bytes at file offset `o` are `o ^ seed` (little
//! endian), so any READ reply can be checked without keeping the file in memory.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How big the share is.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// The file READ workloads read.
    pub data: u64,
    /// The file 4k WRITE writes into.
    pub write: u64,
    /// Files in `names/` (LOOKUP hits, a file per slot for SETATTR).
    pub names: usize,
    /// Entries of `dir10k/` (READDIRPLUS).
    pub dir_entries: usize,
    /// Directories of the build tree, and files in each.
    pub tree_dirs: usize,
    pub tree_files: usize,
    /// Files of the `inodes/` tree, looked up before the workloads (the inode table).
    pub inodes: usize,
}

impl Sizes {
    /// For measurements.
    pub const BENCH: Sizes = Sizes {
        data: 64 << 20,
        write: 16 << 20,
        names: 1000,
        dir_entries: 10_000,
        tree_dirs: 16,
        tree_files: 64,
        inodes: 5_000,
    };
    /// For the smoke test: small enough to build in seconds on a busy machine (creating
    /// files is the slow part), big enough for every workload.
    pub const SMOKE: Sizes = Sizes {
        data: 8 << 20,
        write: 1 << 20,
        names: 128,
        dir_entries: 1000,
        tree_dirs: 4,
        tree_files: 16,
        inodes: 300,
    };
}

/// Files per directory of the `inodes/` tree.
pub const TABLE_DIR_FILES: usize = 1000;

/// Name of directory `d` of the `inodes/` tree.
pub fn table_dir(d: usize) -> String {
    format!("d{d:04}")
}

/// Name of file `i` (counted over the whole tree) in its directory of `inodes/`.
pub fn table_file(i: usize) -> String {
    format!("f{:03}", i % TABLE_DIR_FILES)
}

/// Seed of the data file's pattern.
pub const DATA_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
/// Seed of the write file's pattern.
pub const WRITE_SEED: u64 = 0x5851_f42d_4c95_7f2d;

/// The 8-byte pattern word at offset `off` (a multiple of 8) of a file seeded `seed`.
pub fn word(seed: u64, off: u64) -> u64 {
    off ^ seed
}

/// Fills `buf` with the pattern of file `seed` from offset `off` (a multiple of 8).
pub fn fill(buf: &mut [u8], seed: u64, off: u64) {
    for (i, w) in buf.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&word(seed, off + 8 * i as u64).to_le_bytes());
    }
}

/// Whether `buf` holds the pattern of file `seed` from offset `off`; the first bad offset.
///
/// Blocks of [`CHECK_BLOCK`] bytes are compared without an early exit inside a block (the
/// compiler turns that into vector instructions), and a block that differs is searched
/// word by word: a fast guest does not look at what it reads, so the generator's check
/// must cost far less than the daemon's copy or it, not the daemon, is what is measured.
pub fn check(buf: &[u8], seed: u64, off: u64) -> Result<(), u64> {
    for (b, block) in buf.chunks(CHECK_BLOCK).enumerate() {
        let base = off + (b * CHECK_BLOCK) as u64;
        let differs = block.chunks_exact(8).enumerate().fold(0, |acc, (i, w)| {
            acc | (load(w) ^ word(seed, base + 8 * i as u64))
        });
        if differs != 0 {
            let i = block
                .chunks_exact(8)
                .enumerate()
                .position(|(i, w)| load(w) != word(seed, base + 8 * i as u64))
                .unwrap_or_default();
            return Err(base + 8 * i as u64);
        }
    }
    match buf.len() % 8 {
        0 => Ok(()),
        _ => Err(off + buf.len() as u64),
    }
}

/// Bytes [`check`] compares at a time.
const CHECK_BLOCK: usize = 1024;

fn load(w: &[u8]) -> u64 {
    u64::from_le_bytes(w.try_into().unwrap())
}

/// One file of the build tree.
#[derive(Debug, Clone)]
pub struct TreeFile {
    pub name: String,
    pub ino: u64,
    pub size: u64,
    pub seed: u64,
}

/// One directory of the build tree.
#[derive(Debug, Clone)]
pub struct TreeDir {
    pub name: String,
    pub ino: u64,
    pub files: Vec<TreeFile>,
}

/// The shared directory and its host facts.
pub struct Share {
    pub root: PathBuf,
    pub sizes: Sizes,
    /// `names/` entries: (name, inode number).
    pub names: Vec<(String, u64)>,
    /// `dir10k/` entries by name: inode number.
    pub dir_entries: HashMap<String, u64>,
    pub tree: Vec<TreeDir>,
    /// Inode numbers of the top-level files and directories, by name.
    pub top: HashMap<String, u64>,
    /// Inode numbers of the `inodes/` tree's files, in lookup order (directory by
    /// directory).
    pub table_inos: Vec<u64>,
}

fn ino(p: &Path) -> u64 {
    fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .ino()
}

fn write_pattern(p: &Path, size: u64, seed: u64) {
    if fs::metadata(p).is_ok_and(|m| m.len() == size) {
        return;
    }
    let mut f = File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
    let mut buf = vec![0u8; (1 << 20).min(size as usize)];
    let mut off = 0;
    while off < size {
        let n = buf.len().min((size - off) as usize);
        fill(&mut buf[..n], seed, off);
        f.write_all(&buf[..n]).expect("write a pattern file");
        off += n as u64;
    }
}

/// Creates `n` empty files named `prefix{i:05}` in `dir` (kept when already there).
fn many_files(dir: &Path, prefix: &str, n: usize) {
    fs::create_dir_all(dir).expect("create a directory of the share");
    for i in 0..n {
        let p = dir.join(format!("{prefix}{i:05}"));
        if !p.exists() {
            File::create(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        }
    }
}

/// Creates (or completes) the `inodes/` tree of `n` empty files under `root`, two threads
/// at a time, and returns their inode numbers in order.
fn inode_tree(root: &Path, n: usize) -> Vec<u64> {
    let dirs = n.div_ceil(TABLE_DIR_FILES);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let per_dir: Vec<Vec<(usize, u64)>> = std::thread::scope(|sc| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                sc.spawn(|| {
                    let mut got = Vec::new();
                    loop {
                        let d = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if d >= dirs {
                            return got;
                        }
                        let first = d * TABLE_DIR_FILES;
                        let files = TABLE_DIR_FILES.min(n - first);
                        let dir = root.join(table_dir(d));
                        fs::create_dir_all(&dir).expect("create an inodes/ directory");
                        let have = fs::read_dir(&dir).map(|r| r.count()).unwrap_or(0);
                        if have < files {
                            for i in first..first + files {
                                let p = dir.join(table_file(i));
                                if !p.exists() {
                                    File::create(&p)
                                        .unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
                                }
                            }
                        }
                        // Inode numbers from the directory listing: one getdents per
                        // thousand files instead of a stat each.
                        let inos: HashMap<String, u64> = fs::read_dir(&dir)
                            .expect("list an inodes/ directory")
                            .map(|e| {
                                let e = e.expect("list an inodes/ directory");
                                (e.file_name().into_string().expect("utf-8"), e.ino())
                            })
                            .collect();
                        got.push(
                            (first..first + files)
                                .map(|i| (i, inos[&table_file(i)]))
                                .collect(),
                        );
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("an inodes/ worker panicked"))
            .collect()
    });
    let mut inos = vec![0; n];
    for (i, ino) in per_dir.into_iter().flatten() {
        inos[i] = ino;
    }
    inos
}

impl Share {
    /// Builds (or reuses) the share under `root`.
    pub fn prepare(root: &Path, sizes: Sizes) -> Self {
        fs::create_dir_all(root).expect("create the shared directory");
        write_pattern(&root.join("data.bin"), sizes.data, DATA_SEED);
        write_pattern(&root.join("write.bin"), sizes.write, WRITE_SEED);
        // The data file is read from the page cache, for every daemon alike.
        std::io::copy(
            &mut File::open(root.join("data.bin")).expect("open data.bin"),
            &mut std::io::sink(),
        )
        .expect("read data.bin");
        write_pattern(&root.join("attr.bin"), 4096, 0);
        many_files(&root.join("names"), "n", sizes.names);
        many_files(&root.join("dir10k"), "e", sizes.dir_entries);
        let started = std::time::Instant::now();
        let table_inos = inode_tree(&root.join("inodes"), sizes.inodes);
        eprintln!(
            "inodes/: {} files ready in {:.1?}",
            sizes.inodes,
            started.elapsed()
        );
        let create = root.join("create");
        let _ = fs::remove_dir_all(&create);
        fs::create_dir(&create).expect("create create/");
        let mut tree = Vec::new();
        for d in 0..sizes.tree_dirs {
            let dname = format!("src{d:02}");
            let dpath = root.join("tree").join(&dname);
            fs::create_dir_all(&dpath).expect("create a tree directory");
            let mut files = Vec::new();
            for f in 0..sizes.tree_files {
                let name = format!("unit{f:02}.c");
                // 1-16 KiB, a multiple of 8.
                let size = 1024 * (1 + ((d * 7 + f * 13) % 16) as u64);
                let seed = (d * sizes.tree_files + f) as u64 * 0x1000_0001;
                let p = dpath.join(&name);
                write_pattern(&p, size, seed);
                files.push(TreeFile {
                    ino: ino(&p),
                    name,
                    size,
                    seed,
                });
            }
            tree.push(TreeDir {
                ino: ino(&dpath),
                name: dname,
                files,
            });
        }
        let names = (0..sizes.names)
            .map(|i| {
                let n = format!("n{i:05}");
                let i = ino(&root.join("names").join(&n));
                (n, i)
            })
            .collect();
        let dir_entries = fs::read_dir(root.join("dir10k"))
            .expect("list dir10k")
            .map(|e| {
                let e = e.expect("list dir10k");
                (e.file_name().into_string().expect("utf-8"), e.ino())
            })
            .collect();
        let top = [
            "data.bin",
            "write.bin",
            "attr.bin",
            "names",
            "dir10k",
            "create",
            "tree",
            "inodes",
        ]
        .iter()
        .filter(|n| root.join(n).exists())
        .map(|n| (n.to_string(), ino(&root.join(n))))
        .collect();
        Self {
            root: root.to_path_buf(),
            sizes,
            names,
            dir_entries,
            tree,
            top,
            table_inos,
        }
    }

    /// Host inode number of a top-level entry.
    pub fn ino(&self, name: &str) -> u64 {
        self.top[name]
    }

    /// Zeroes the write file, so that a WRITE the daemon dropped cannot pass the check.
    pub fn reset_write_file(&self) {
        let f = File::options()
            .write(true)
            .open(self.root.join("write.bin"))
            .expect("open write.bin");
        f.set_len(0).expect("truncate write.bin");
        f.set_len(self.sizes.write).expect("size write.bin");
    }

    /// Checks the write file on the host: every block in `written` holds the pattern,
    /// every other block is still zero.
    pub fn check_write_file(&self, written: &[bool], block: u64) -> Result<(), String> {
        let data = fs::read(self.root.join("write.bin")).map_err(|e| e.to_string())?;
        for (i, w) in written.iter().enumerate() {
            let off = i as u64 * block;
            let b = &data[off as usize..(off + block) as usize];
            if *w {
                check(b, WRITE_SEED, off)
                    .map_err(|at| format!("write.bin on the host differs at offset {at}"))?;
            } else if b.iter().any(|&x| x != 0) {
                return Err(format!(
                    "write.bin block at {off} was never written but is not zero"
                ));
            }
        }
        Ok(())
    }

    /// Entries left in `create/` (none once every created file was unlinked).
    pub fn created_left(&self) -> usize {
        fs::read_dir(self.root.join("create"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}
