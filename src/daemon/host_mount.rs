//! Host mount mode (`--mount MNT`): mount first (in the host's mount namespace, before any
//! sandbox), then sandbox and filesystem as for a VM, then serve /dev/fuse until
//! SIGTERM/SIGINT or an unmount, and unmount.
//!
//! The unmount is done by the process that stayed in the host's mount namespace: the
//! serving process itself with `--sandbox none|chroot`, the waiting parent with
//! `--sandbox namespace`.

use std::fs::File;
use std::sync::Arc;

use super::{DaemonError, Opened, open_filesystem, signals};
use crate::config::{Config, HostMount};
use crate::fuse::server::Server;
use crate::fusedev::backing::{DevBacking, PassthroughMode};
use crate::fusedev::uring::{self, Rings};
use crate::fusedev::{self, Ended, FusedevError, Mount, MountOptions, Stop};
use crate::oslib;
use crate::sandbox::SandboxMode;
use crate::systemd::Notifier;

/// Runs the host mount until a signal or an unmount.
pub(super) fn run(
    cfg: &Config,
    hm: &HostMount,
    signals: File,
    notifier: &Notifier,
) -> Result<(), DaemonError> {
    // Before the mount, and before any sandbox hides /sys.
    let kernel = uring::probe_kernel();
    uring::check(hm.io_uring, kernel.support).map_err(FusedevError::from)?;
    let mut mount = Mount::new(&MountOptions {
        mountpoint: &hm.mountpoint,
        shared_dir: &cfg.shared_dir,
        readonly: cfg.fs.readonly,
        readers: hm.threads,
    })?;
    let fs = match open_filesystem(cfg) {
        Ok(Opened::Serve(fs)) => *fs,
        Ok(Opened::ChildExited(code)) => {
            mount.unmount()?;
            return match code {
                0 => Ok(()),
                code => Err(DaemonError::SandboxedChild(code)),
            };
        }
        Err(e) => {
            // Do not leave a mount nobody serves.
            if let Err(u) = mount.unmount() {
                log::error!("{u}");
            }
            return Err(e);
        }
    };
    // A blocking lock request holds its reader thread until granted: serve locks on the
    // host only when another thread is left to serve the request that releases it.
    let fs = fs.with_locks(hm.threads > 1);
    let fs = match hm.passthrough {
        PassthroughMode::Off => fs,
        mode => {
            let dev = oslib::fs::dup(mount.dev()).map_err(FusedevError::Dup)?;
            fs.with_backing(Arc::new(DevBacking::new(dev, mode)))
        }
    };
    // Ring entries per queue (one thread each): the kernel puts a request on the queue of
    // its caller's CPU, and a request waiting for a lock holds its entry, so each queue
    // gets room for several waiters (libfuse's default depth, 8) or --thread-pool-size.
    let depth = hm.threads.max(uring::MIN_DEPTH);
    let mut rings = match uring::prepare(hm.io_uring, mount.dev(), depth, kernel) {
        Ok(r) => r,
        Err(e) => {
            if let Err(u) = mount.unmount() {
                log::error!("{u}");
            }
            return Err(FusedevError::from(e).into());
        }
    };
    let mut server = Server::new(Arc::new(fs));
    if let Some(r) = &rings {
        server = server.with_transport_flags(r.init_flags());
    }
    let server = Arc::new(server);
    notifier.ready();
    let result = serve(server.clone(), &mut mount, signals, rings.as_mut());
    if let Some(r) = &rings {
        log::info!("served {} request(s) over io_uring", r.served());
    }
    // Only now, with every thread joined, may the ring entries' memory go.
    drop(rings);
    notifier.stopping();
    signals::log_requests(&server);
    // Inside the namespace sandbox the mount is the parent's to undo.
    if cfg.sandbox != SandboxMode::Namespace {
        mount.unmount()?;
    }
    log::info!("exiting");
    result
}

fn serve(
    server: Arc<Server<crate::passthrough::PassthroughFs>>,
    mount: &mut Mount,
    signals: File,
    rings: Option<&mut Rings>,
) -> Result<(), DaemonError> {
    let stop = Arc::new(Stop::new().map_err(DaemonError::Signals)?);
    let signal_stop = stop.clone();
    signals::spawn(signals, server.clone(), "unmounting", move || {
        signal_stop.request()
    })
    .map_err(DaemonError::Signals)?;
    let readers = mount.take_readers();
    log::info!(
        "serving {} with {} reader thread(s)",
        mount.path().display(),
        readers.len()
    );
    match fusedev::session::serve(server, readers, stop, rings)? {
        Ended::Stopped => {}
        Ended::Unmounted => log::info!("{} was unmounted", mount.path().display()),
        Ended::InitRefused => return Err(FusedevError::InitRefused.into()),
    }
    Ok(())
}
