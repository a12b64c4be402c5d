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
//! - `run`: a session with one daemon, a thread per queue, measurements;
//! - `daemon`: starting a daemon command line, its CPU time and RSS from /proc;
//! - `report`: tables, medians and ratios.
//!
//! The vhost-user negotiation, memfd guest memory and ring layout come from the integration
//! tests' VMM (the `vhostfsd-test-vmm` crate, `tests/vmm/`), the FUSE requests from
//! `vhostfsd::fuse::testing` (feature `test-utils`).

mod conn;
mod daemon;
mod report;
mod ring;
mod run;
mod share;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use daemon::{Daemon, DaemonCmd};
use run::{Measure, Session, Shape};
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
    /// Shared directory to build and serve (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also measure idle RSS and memory per inode (looks up 5,000 files once).
    #[arg(long)]
    memory: bool,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn own_daemon() -> String {
    env!("CARGO_BIN_EXE_vhostfsd").to_string()
}

/// One daemon run: every workload once, plus the memory figures when asked.
struct DaemonRun {
    per_kind: Vec<Measure>,
    idle_rss: u64,
    bytes_per_inode: Option<f64>,
}

fn run_daemon(
    cmd: &DaemonCmd,
    share: &Share,
    work: &std::path::Path,
    shape: Shape,
    kinds: &[Kind],
    seconds: f64,
    memory: bool,
) -> DaemonRun {
    let d = Daemon::start(cmd, &share.root, work);
    let payload = kinds.iter().map(|k| k.payload()).max().unwrap_or(0);
    let mut s = Session::connect(&d.socket, shape, payload);
    let pids = d.pids();
    let idle_rss = Daemon::rss_bytes(&pids);
    // Before the workloads, which leave their own inodes behind (and every inode may hold an
    // fd: the open-file limit must leave room for both).
    let bytes_per_inode = memory.then(|| {
        s.lookup_all_inodes();
        let after = Daemon::rss_bytes(&pids);
        (after as f64 - idle_rss as f64) / share::INODE_FILES as f64
    });
    let per_kind = kinds
        .iter()
        .map(|k| s.run(*k, share, Duration::from_secs_f64(seconds), &pids))
        .collect();
    drop(s);
    DaemonRun {
        per_kind,
        idle_rss,
        bytes_per_inode,
    }
}

fn print_memory(label: &str, runs: &[DaemonRun]) {
    let idle = report::median(runs.iter().map(|r| r.idle_rss as f64).collect());
    print!("{label}: idle RSS {:.1} MiB", idle / 1024.0 / 1024.0);
    let per: Vec<f64> = runs.iter().filter_map(|r| r.bytes_per_inode).collect();
    if !per.is_empty() {
        print!(
            ", {:.0} bytes of RSS per inode looked up",
            report::median(per)
        );
    }
    println!();
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
    let share = Share::prepare(&work.path().join("share"), share::Sizes::SMOKE, false);
    let shapes = [
        (
            Shape {
                queues: 2,
                depth: 4,
                event_idx: true,
            },
            Kind::ALL.to_vec(),
        ),
        (
            Shape {
                queues: 1,
                depth: 4,
                event_idx: false,
            },
            vec![Kind::Read4k, Kind::Getattr],
        ),
    ];
    for (shape, kinds) in shapes {
        let cmd = DaemonCmd::parse(&format!(
            "{} --num-request-queues {}",
            own_daemon(),
            shape.queues
        ));
        println!(
            "smoke: {} queue(s), depth {}, EVENT_IDX {}",
            shape.queues, shape.depth, shape.event_idx
        );
        let r = run_daemon(&cmd, &share, work.path(), shape, &kinds, 1.0, false);
        report::single_header();
        for (k, m) in kinds.iter().zip(&r.per_kind) {
            assert!(m.ops > 0, "{}: no operation completed", k.name());
            report::single_row(k.name(), m);
        }
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
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
    let root = args
        .dir
        .clone()
        .unwrap_or_else(|| work.path().join("share"));
    eprintln!("preparing the shared directory {}", root.display());
    let share = Share::prepare(&root, share::Sizes::BENCH, args.memory);
    let shape = Shape {
        queues: args.queues,
        depth: args.depth,
        event_idx: args.event_idx == "on",
    };
    let seconds = args.seconds;
    match &args.compare {
        None => {
            let cmd = DaemonCmd::parse(&args.daemon.clone().unwrap_or_else(own_daemon));
            let r = run_daemon(
                &cmd,
                &share,
                work.path(),
                shape,
                &kinds,
                seconds,
                args.memory,
            );
            println!(
                "{}: {} queue(s), depth {}, EVENT_IDX {}, {seconds} s per workload",
                cmd.words.join(" "),
                shape.queues,
                shape.depth,
                args.event_idx
            );
            report::single_header();
            for (k, m) in kinds.iter().zip(&r.per_kind) {
                report::single_row(k.name(), m);
            }
            print_memory(&cmd.label(), std::slice::from_ref(&r));
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
                            args.memory,
                        ));
                    } else {
                        rb.push(run_daemon(
                            &b,
                            &share,
                            work.path(),
                            b_shape,
                            &kinds,
                            seconds,
                            args.memory,
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
            for (i, k) in kinds.iter().enumerate() {
                let pa: Vec<Measure> = ra.iter().map(|r| r.per_kind[i].clone()).collect();
                let pb: Vec<Measure> = rb.iter().map(|r| r.per_kind[i].clone()).collect();
                report::compare_row(&report::Rounds {
                    name: k.name(),
                    a: &pa,
                    b: &pb,
                });
            }
            print_memory(&format!("A {}", a.label()), &ra);
            print_memory(&format!("B {}", b.label()), &rb);
        }
    }
}
