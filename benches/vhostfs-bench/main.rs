//! vhostfs-bench: a load generator that plays the VMM over the vhost-user socket of any
//! virtio-fs backend (vhostfsd, virtiofsd), the way a fast guest would, and measures the
//! daemon's own cost per request.
//!
//! `cargo bench --bench vhostfs-bench -- [OPTIONS]` measures (see `--help` and
//! docs/performance.md); run by `cargo test` (no `--bench` argument) it is a smoke test: one
//! second of every workload against this crate's vhostfsd, every reply checked.
//!
//! - `ring`: the driver side of a request queue, slots with fixed buffers, EVENT_IDX;
//! - `conn`: FUSE requests encoded into a slot, replies read in place;
//! - `workload`: what each workload sends and how each reply is checked;
//! - `share`: the shared directory and the host facts replies are checked against;
//! - `scratch_fs`: the journaled ext4 on tmpfs the share lives on by default;
//! - `run`: a session with one daemon, a thread per queue, measurements;
//! - `readers`: more guest threads reading one queue's READ replies;
//! - `daemon`: starting a daemon command line, its CPU time and RSS from /proc;
//! - `report`: tables, medians and ratios.
//!
//! The vhost-user negotiation, memfd guest memory and ring layout come from the integration
//! tests' VMM (the `vhostfsd-test-vmm` crate, `tests/vmm/`), the FUSE requests from
//! `vhostfsd::fuse::testing` (feature `test-utils`).

mod conn;
mod daemon;
mod readers;
mod report;
mod ring;
mod run;
mod scratch_fs;
mod share;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use daemon::{Daemon, DaemonCmd};
use run::{Measure, Session, Shape};
use scratch_fs::ScratchFs;
use share::Share;
use workload::Kind;

/// Load generator for vhost-user virtio-fs daemons.
#[derive(Debug, Parser)]
#[command(name = "vhostfs-bench")]
struct Args {
    /// Daemon command line to measure (`{socket}`/`{dir}` placeholders, else
    /// `--socket-path=`/`--shared-dir=` are appended). Default: this crate's vhostfsd.
    #[arg(long, value_name = "CMD")]
    daemon: Option<String>,
    /// Compare two daemon command lines, alternating rounds.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    compare: Option<Vec<String>>,
    /// Request queues.
    #[arg(long, default_value_t = 1)]
    queues: usize,
    /// Request queues for daemon B of `--compare` (default: `--queues`).
    #[arg(long)]
    b_queues: Option<usize>,
    /// Guest threads reading each queue's READ replies: the data of each reply is checked
    /// on one of them before its slot is used again, as a guest with several vCPUs reads
    /// through one queue.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
    readers: u8,
    /// Requests in flight per queue (at most 64).
    #[arg(long, default_value_t = 16)]
    depth: usize,
    /// Negotiate VIRTIO_RING_F_EVENT_IDX.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    event_idx: String,
    /// Seconds per workload per round.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Rounds (with `--compare`: each daemon once per round, order alternating).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Workloads to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    workloads: Vec<Kind>,
    /// Shared directory to build and serve (default: one on an ext4 with a journal that
    /// the bench makes in a file on tmpfs and mounts; see scratch_fs.rs).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also print idle RSS and RSS per inode looked up (the files of the inode table, see
    /// `--inodes`).
    #[arg(long)]
    memory: bool,
    /// Files in the share's `inodes/` tree (directories of 1,000 empty files), all looked
    /// up before the workloads. When given, the workloads run twice per daemon: with the
    /// first 1,000 looked up (a small inode table), then again after looking up the rest.
    /// Default: 5,000 files, one step.
    #[arg(long, value_name = "N")]
    inodes: Option<usize>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn own_daemon() -> String {
    env!("CARGO_BIN_EXE_vhostfsd").to_string()
}

/// The small inode table of `--inodes`: the first step's size.
const SMALL_TABLE: usize = 1000;

/// One step of a daemon run: the inode table grown to `inodes` files, then every workload.
struct Step {
    inodes: usize,
    /// RSS before and after this step's lookups.
    rss_before: u64,
    rss_after: u64,
    per_kind: Vec<Measure>,
}

impl Step {
    /// RSS per inode this step's lookups added.
    fn bytes_per_inode(&self, looked_up_before: usize) -> f64 {
        (self.rss_after as f64 - self.rss_before as f64)
            / (self.inodes - looked_up_before).max(1) as f64
    }
}

/// One daemon run: per step, the table grown and every workload once.
struct DaemonRun {
    idle_rss: u64,
    steps: Vec<Step>,
}

/// Inode table sizes of each daemon run.
fn table_steps(inodes: Option<usize>, default: usize) -> Vec<usize> {
    match inodes {
        Some(n) if n > SMALL_TABLE => vec![SMALL_TABLE, n],
        Some(n) => vec![n],
        None => vec![default],
    }
}

fn run_daemon(
    cmd: &DaemonCmd,
    share: &Share,
    work: &std::path::Path,
    shape: Shape,
    kinds: &[Kind],
    seconds: f64,
    steps: &[usize],
) -> DaemonRun {
    let d = Daemon::start(cmd, &share.root, work);
    let payload = kinds.iter().map(|k| k.payload()).max().unwrap_or(0);
    let mut s = Session::connect(&d.socket, shape, payload);
    let pids = d.pids();
    let idle_rss = Daemon::rss_bytes(&pids);
    let steps = steps
        .iter()
        .map(|&inodes| {
            // Before the workloads, which leave their own inodes behind (and every inode may
            // hold an fd: the open-file limit must leave room for both).
            let rss_before = Daemon::rss_bytes(&pids);
            let started = std::time::Instant::now();
            s.lookup_table(share, inodes);
            let rss_after = Daemon::rss_bytes(&pids);
            eprintln!(
                "{}: inode table at {inodes} files ({:.1?} of lookups)",
                cmd.label(),
                started.elapsed()
            );
            let per_kind = kinds
                .iter()
                .map(|k| s.run(*k, share, Duration::from_secs_f64(seconds), &pids))
                .collect();
            Step {
                inodes,
                rss_before,
                rss_after,
                per_kind,
            }
        })
        .collect();
    drop(s);
    DaemonRun { idle_rss, steps }
}

fn print_memory(label: &str, runs: &[DaemonRun]) {
    let idle = report::median(runs.iter().map(|r| r.idle_rss as f64).collect());
    print!("{label}: idle RSS {:.1} MiB", idle / 1024.0 / 1024.0);
    let mut before = 0;
    for (i, step) in runs[0].steps.iter().enumerate() {
        let per: Vec<f64> = runs
            .iter()
            .map(|r| r.steps[i].bytes_per_inode(before))
            .collect();
        let (lo, hi) = report::min_max(&per);
        print!(
            "; RSS per inode looked up (files {before}..{}): {:.0} bytes (min-max {lo:.0}-{hi:.0}), RSS {:.1} MiB after",
            step.inodes,
            report::median(per),
            report::median(runs.iter().map(|r| r.steps[i].rss_after as f64).collect())
                / 1024.0
                / 1024.0
        );
        before = step.inodes;
    }
    println!();
}

/// Each run's measures, per step then per workload.
fn by_step(runs: &[DaemonRun]) -> Vec<Vec<Vec<Measure>>> {
    runs.iter()
        .map(|r| r.steps.iter().map(|s| s.per_kind.clone()).collect())
        .collect()
}

/// Row names: the workload, and the table size when there are several steps.
fn row_name(k: Kind, steps: &[usize], step: usize) -> String {
    if steps.len() > 1 {
        format!("{} @{}", k.name(), steps[step])
    } else {
        k.name().to_string()
    }
}

/// `cargo test`: one second of every workload against our daemon, replies checked.
fn smoke() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED: the vhostfs-bench smoke test needs root (the daemon switches to the \
             caller's credentials and sandboxes itself); run `cargo test` as root"
        );
        return;
    }
    let work = tempfile::tempdir().expect("create a work directory");
    let share = Share::prepare(&work.path().join("share"), share::Sizes::SMOKE);
    let all = share.sizes.inodes;
    let shapes = [
        (
            Shape {
                queues: 2,
                readers: 2,
                depth: 4,
                event_idx: true,
            },
            Kind::ALL.to_vec(),
            vec![all],
        ),
        // Two table sizes, as `--inodes` runs them.
        (
            Shape {
                queues: 1,
                readers: 1,
                depth: 4,
                event_idx: false,
            },
            vec![Kind::Read4k, Kind::Getattr, Kind::LookupMany],
            vec![all / 3, all],
        ),
    ];
    for (shape, kinds, steps) in shapes {
        let cmd = DaemonCmd::parse(&format!(
            "{} --num-request-queues {}",
            own_daemon(),
            shape.queues
        ));
        println!(
            "smoke: {} queue(s), depth {}, EVENT_IDX {}, {} reader(s) per queue",
            shape.queues, shape.depth, shape.event_idx, shape.readers
        );
        let r = run_daemon(&cmd, &share, work.path(), shape, &kinds, 1.0, &steps);
        report::single_header();
        for (i, step) in r.steps.iter().enumerate() {
            for (k, m) in kinds.iter().zip(&step.per_kind) {
                assert!(m.ops > 0, "{}: no operation completed", k.name());
                report::single_row(&row_name(*k, &steps, i), m);
            }
        }
        print_memory("smoke", std::slice::from_ref(&r));
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        readers::self_check();
        smoke();
        return;
    }
    let args = Args::parse();
    let kinds = if args.workloads.is_empty() {
        Kind::ALL.to_vec()
    } else {
        args.workloads.clone()
    };
    let work = tempfile::tempdir().expect("create a work directory");
    let sizes = share::Sizes {
        inodes: args.inodes.unwrap_or(share::Sizes::BENCH.inodes),
        ..share::Sizes::BENCH
    };
    // Dropped before `work`, which holds its mountpoint.
    let scratch = match &args.dir {
        Some(_) => None,
        None => ScratchFs::mount(work.path(), sizes.inodes)
            .inspect_err(|e| {
                eprintln!(
                    "no scratch ext4 for the share ({e}): using {}, whose file system may \
                     skew the create workload",
                    work.path().display()
                )
            })
            .ok(),
    };
    let root = match (&args.dir, &scratch) {
        (Some(dir), _) => dir.clone(),
        (None, Some(fs)) => fs.root().join("share"),
        (None, None) => work.path().join("share"),
    };
    eprintln!("preparing the shared directory {}", root.display());
    let share = Share::prepare(&root, sizes);
    let steps = table_steps(args.inodes, sizes.inodes);
    let shape = Shape {
        queues: args.queues,
        readers: usize::from(args.readers),
        depth: args.depth,
        event_idx: args.event_idx == "on",
    };
    let seconds = args.seconds;
    match &args.compare {
        None => {
            let cmd = DaemonCmd::parse(&args.daemon.clone().unwrap_or_else(own_daemon));
            let r = run_daemon(&cmd, &share, work.path(), shape, &kinds, seconds, &steps);
            println!(
                "{}: {} queue(s), depth {}, EVENT_IDX {}, {seconds} s per workload",
                cmd.words.join(" "),
                shape.queues,
                shape.depth,
                args.event_idx
            );
            report::single_header();
            for (i, step) in r.steps.iter().enumerate() {
                for (k, m) in kinds.iter().zip(&step.per_kind) {
                    report::single_row(&row_name(*k, &steps, i), m);
                }
            }
            if steps.len() > 1 {
                report::scaling(
                    &cmd.label(),
                    &kinds,
                    &steps,
                    &by_step(std::slice::from_ref(&r)),
                );
            }
            if args.memory {
                print_memory(&cmd.label(), std::slice::from_ref(&r));
            }
        }
        Some(ab) => {
            let (a, b) = (DaemonCmd::parse(&ab[0]), DaemonCmd::parse(&ab[1]));
            let b_shape = Shape {
                queues: args.b_queues.unwrap_or(args.queues),
                ..shape
            };
            let (mut ra, mut rb) = (Vec::new(), Vec::new());
            for round in 0..args.rounds {
                eprintln!("round {}/{}", round + 1, args.rounds);
                let mut one = |first_a: bool| {
                    if first_a {
                        ra.push(run_daemon(
                            &a,
                            &share,
                            work.path(),
                            shape,
                            &kinds,
                            seconds,
                            &steps,
                        ));
                    } else {
                        rb.push(run_daemon(
                            &b,
                            &share,
                            work.path(),
                            b_shape,
                            &kinds,
                            seconds,
                            &steps,
                        ));
                    }
                };
                let a_first = round % 2 == 0;
                one(a_first);
                one(!a_first);
            }
            println!(
                "{} rounds, {seconds} s per workload; A: {} queue(s), B: {} queue(s); depth {}, EVENT_IDX {}",
                args.rounds, shape.queues, b_shape.queues, shape.depth, args.event_idx
            );
            report::compare_header(&a.words.join(" "), &b.words.join(" "));
            for step in 0..steps.len() {
                for (i, k) in kinds.iter().enumerate() {
                    let of = |runs: &[DaemonRun]| -> Vec<Measure> {
                        runs.iter()
                            .map(|r| r.steps[step].per_kind[i].clone())
                            .collect()
                    };
                    report::compare_row(&report::Rounds {
                        name: &row_name(*k, &steps, step),
                        a: &of(&ra),
                        b: &of(&rb),
                    });
                }
            }
            if steps.len() > 1 {
                report::scaling(&format!("A {}", a.label()), &kinds, &steps, &by_step(&ra));
                report::scaling(&format!("B {}", b.label()), &kinds, &steps, &by_step(&rb));
            }
            if args.memory {
                print_memory(&format!("A {}", a.label()), &ra);
                print_memory(&format!("B {}", b.label()), &rb);
            }
        }
    }
}
