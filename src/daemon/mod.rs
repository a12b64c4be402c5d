//! Starts the daemon from a checked configuration and serves one vhost-user frontend after
//! another until SIGTERM or SIGINT.
//!
//! Order of start-up: logging; systemd's notification socket, if any; SIGTERM/SIGINT (shut
//! down) and SIGUSR1 (log the requests served per opcode, also logged at exit) blocked and
//! read from a signalfd (before any thread exists, so every thread inherits the mask); the
//! listening socket; RLIMIT_NOFILE; /proc/self/fd; the sandbox; the filesystem and FUSE
//! server; READY=1 to systemd. Then, for each frontend, a
//! fresh backend and `VhostUserDaemon` (new queues and worker threads); when the frontend
//! goes away, the requests in flight finish, the filesystem state is dropped, and the next
//! frontend is awaited.

mod host_mount;
mod limits;
mod listener;
mod logger;
mod panic;
mod signals;

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use vhost::vhost_user::{Error as VhostError, Listener};
use vhost_user_backend::{Error as BackendError, ShutdownHandle, VhostUserDaemon};
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EFD_CLOEXEC, EFD_NONBLOCK, EventFd};

use crate::config::{Config, Listen, Transport};
use crate::fuse::server::Server;
use crate::fusedev::FusedevError;
use crate::fusedev::uring::UringMode;
use crate::oslib;
use crate::passthrough::{self, PassthroughFs};
use crate::sandbox::privileges::{self, CapsError};
use crate::sandbox::seccomp::{self, SeccompError};
use crate::sandbox::{self, Outcome, SandboxError};
use crate::systemd::Notifier;
use crate::vhost_user::backend::DirtyLog;
use crate::vhost_user::{
    BackendChannel, DeviceConfig, VhostUserError, VhostUserFsBackend, capabilities,
};

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "cannot connect to systemd's NOTIFY_SOCKET: check the unit (Type=notify) or unset \
         NOTIFY_SOCKET"
    )]
    NotifySocket(#[source] io::Error),
    #[error("cannot set up SIGTERM/SIGINT handling (signalfd)")]
    Signals(#[source] io::Error),
    #[error(
        "cannot listen on {path:?}: check that its directory exists and is writable, and \
         that no other daemon serves this socket"
    )]
    Socket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "--fd {fd} is not a listening socket: the parent process must pass an open, \
         listening unix socket"
    )]
    InheritedFd {
        fd: RawFd,
        #[source]
        source: io::Error,
    },
    #[error("cannot find group {group:?} for --socket-group: check /etc/group (or NSS)")]
    SocketGroup {
        group: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot give socket {path:?} to group {group:?}: the daemon must be root or a \
         member of that group"
    )]
    SocketChown {
        path: PathBuf,
        group: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot raise the open-file limit (RLIMIT_NOFILE): lower --rlimit-nofile or grant \
         CAP_SYS_RESOURCE"
    )]
    Rlimit(#[source] io::Error),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Capabilities(#[from] CapsError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error("the sandboxed daemon process exited with status {0}: see its messages above")]
    SandboxedChild(i32),
    #[error("cannot open the shared directory {path:?}: check that it exists and is readable")]
    Filesystem {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Device(#[from] VhostUserError),
    /// `vhost_user_backend::Error` implements `Display` but not `std::error::Error`, so it
    /// cannot be a `#[source]`; its text names the cause.
    #[error("the vhost-user daemon failed: {0}")]
    VhostUser(BackendError),
    #[error("waiting for a vhost-user frontend failed")]
    Wait(#[source] io::Error),
    #[error(transparent)]
    HostMount(#[from] FusedevError),
}

/// Runs the daemon until SIGTERM/SIGINT (then `Ok`) or a fatal error.
///
/// # Errors
/// Anything that stops the daemon, with what the operator should check.
pub fn run(cfg: Config) -> Result<(), DaemonError> {
    if cfg.print_capabilities {
        print!("{}", capabilities::json());
        return Ok(());
    }
    logger::init(cfg.log_level, cfg.syslog);
    panic::abort_on_panic();
    // Connected now: the socket's path is out of reach once the sandbox is entered.
    let notifier = Notifier::from_env().map_err(DaemonError::NotifySocket)?;
    let signals = oslib::signal::block_and_signalfd(&[libc::SIGTERM, libc::SIGINT, libc::SIGUSR1])
        .map_err(DaemonError::Signals)?;
    match &cfg.transport {
        Transport::VhostUser(listen) => run_vhost_user(&cfg, listen, signals, &notifier),
        Transport::HostMount(hm) => host_mount::run(&cfg, hm, signals, &notifier),
    }
}

/// The vhost-user daemon: listens, then serves one frontend after another.
fn run_vhost_user(
    cfg: &Config,
    listen: &Listen,
    signals: File,
    notifier: &Notifier,
) -> Result<(), DaemonError> {
    let (listener, _socket_file) = listener::open(listen, cfg.socket_group.as_deref())?;
    let fs = match open_filesystem(cfg)? {
        Opened::Serve(fs) => *fs,
        Opened::ChildExited(0) => return Ok(()),
        Opened::ChildExited(code) => return Err(DaemonError::SandboxedChild(code)),
    };
    // A blocking lock request holds its worker until granted: serve locks on the host only
    // when requests run on a pool, so the request that releases the lock can still run.
    // Otherwise the guest kernel keeps locks local, as with virtiofsd.
    let mut fs = fs.with_locks(cfg.thread_pool_size > 0);
    // One channel slot for the daemon's life: each connection attaches its backend request
    // channel; the filesystem maps DAX ranges through it.
    let channel = Arc::new(BackendChannel::new(cfg.dax_window));
    if cfg.dax_window > 0 {
        fs = fs.with_dax(channel.clone(), cfg.dax_policy);
        log::info!(
            "DAX window of {} MiB, --dax-policy {:?}",
            cfg.dax_window >> 20,
            cfg.dax_policy
        );
    }
    let server = Arc::new(Server::new(Arc::new(fs)));
    let device = DeviceConfig {
        num_request_queues: cfg.num_request_queues,
        queue_size: cfg.queue_size,
        tag: cfg.tag.clone(),
        thread_pool_size: cfg.thread_pool_size,
        max_poll: cfg.max_poll,
    };
    notifier.ready();
    let result = serve(listener, &server, &device, &channel, signals);
    notifier.stopping();
    signals::log_requests(&server);
    log::info!("exiting");
    result
}

/// What [`open_filesystem`] leaves this process to do.
enum Opened {
    /// Serve this filesystem.
    Serve(Box<PassthroughFs>),
    /// This is the parent outside the sandbox; the serving child exited with this code.
    ChildExited(i32),
}

/// Raises RLIMIT_NOFILE, enters the sandbox, opens the shared directory, then drops the
/// capabilities it no longer needs and installs the seccomp filter. Call it while the
/// process is single-threaded, so every thread started later inherits the confinement.
fn open_filesystem(cfg: &Config) -> Result<Opened, DaemonError> {
    let nofile = limits::raise_nofile(cfg.rlimit_nofile).map_err(DaemonError::Rlimit)?;
    log::debug!("open-file limit: {nofile}");
    let (proc_self_fd, root_dir) = match sandbox::enter(
        cfg.sandbox,
        &cfg.shared_dir,
        !cfg.allow_suid_dev,
        cfg.user_namespace.as_ref(),
    )? {
        Outcome::Serve {
            proc_self_fd,
            root_dir,
        } => (proc_self_fd, root_dir),
        Outcome::ChildExited(code) => return Ok(Opened::ChildExited(code)),
    };
    let fs_cfg = passthrough::Config {
        root_dir,
        ..cfg.fs.clone()
    };
    let fs =
        PassthroughFs::new(fs_cfg, proc_self_fd).map_err(|source| DaemonError::Filesystem {
            path: cfg.shared_dir.clone(),
            source,
        })?;
    let host_mount = matches!(cfg.transport, Transport::HostMount(_));
    let needs = privileges::Needs {
        file_handles: fs.uses_file_handles(),
        // Unmounting at exit (and FUSE passthrough's backing ioctls) need CAP_SYS_ADMIN.
        sys_admin: host_mount,
    };
    privileges::restrict(privileges::kept_set(needs, cfg.modcaps))?;
    let features = seccomp::Features {
        host_mount,
        io_uring: matches!(
            &cfg.transport,
            Transport::HostMount(hm) if hm.io_uring != UringMode::Off
        ),
    };
    seccomp::install(cfg.seccomp, features)?;
    log::debug!("seccomp filter: {}", cfg.seccomp);
    Ok(Opened::Serve(Box::new(fs)))
}

/// What the signal thread shares with the serving loop.
struct Shutdown {
    requested: AtomicBool,
    /// The connection being served, to cut it on a signal.
    connection: Mutex<Option<ShutdownHandle>>,
    /// Wakes the loop waiting for the next frontend.
    wake: EventFd,
    listener_fd: RawFd,
}

impl Shutdown {
    fn request(&self) {
        self.requested.store(true, Ordering::Release);
        if let Some(conn) = self.connection().as_ref() {
            conn.shutdown();
        }
        let _ = self.wake.write(1);
        // Unblocks an accept() on a connection that vanished between poll and accept.
        let _ = oslib::socket::shutdown(self.listener_fd);
    }

    fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Option<ShutdownHandle>> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn serve(
    mut listener: Listener,
    server: &Arc<Server<PassthroughFs>>,
    device: &DeviceConfig,
    channel: &Arc<BackendChannel>,
    signals: File,
) -> Result<(), DaemonError> {
    let shutdown = Arc::new(Shutdown {
        requested: AtomicBool::new(false),
        connection: Mutex::new(None),
        wake: EventFd::new(EFD_NONBLOCK | EFD_CLOEXEC).map_err(DaemonError::Signals)?,
        listener_fd: listener.as_raw_fd(),
    });
    let signal_shutdown = shutdown.clone();
    signals::spawn(signals, server.clone(), "shutting down", move || {
        signal_shutdown.request();
    })
    .map_err(DaemonError::Signals)?;

    loop {
        log::info!("waiting for a vhost-user frontend to connect");
        oslib::socket::poll_readable(&[listener.as_raw_fd(), shutdown.wake.as_raw_fd()])
            .map_err(DaemonError::Wait)?;
        if shutdown.requested() {
            return Ok(());
        }
        serve_one(&mut listener, server, device, channel, &shutdown)?;
        if shutdown.requested() {
            return Ok(());
        }
    }
}

/// Serves one frontend, from accept to disconnect, then drops the filesystem state.
fn serve_one(
    listener: &mut Listener,
    server: &Arc<Server<PassthroughFs>>,
    device: &DeviceConfig,
    channel: &Arc<BackendChannel>,
    shutdown: &Shutdown,
) -> Result<(), DaemonError> {
    let mem = GuestMemoryAtomic::new(GuestMemoryMmap::<DirtyLog>::new());
    let backend = Arc::new(VhostUserFsBackend::new(
        server.clone(),
        device,
        mem.clone(),
        channel.clone(),
    )?);
    let mut daemon = VhostUserDaemon::new("vhostfsd".into(), backend.clone(), mem)
        .map_err(DaemonError::VhostUser)?;
    let started = daemon.start(listener);
    let result = match started {
        Err(_) if shutdown.requested() => Ok(()),
        Err(e) => Err(DaemonError::VhostUser(e)),
        Ok(()) => {
            *shutdown.connection() = daemon.shutdown_handle();
            if shutdown.requested() {
                daemon.request_shutdown();
            }
            log::info!("frontend connected");
            let ended = daemon.wait();
            shutdown.connection().take();
            match ended {
                Ok(())
                | Err(BackendError::HandleRequest(
                    VhostError::Disconnected | VhostError::PartialMessage,
                )) => log::info!("frontend disconnected"),
                Err(e) if shutdown.requested() => log::debug!("connection closed: {e}"),
                Err(e) => log::warn!("frontend connection ended: {e}"),
            }
            Ok(())
        }
    };
    for handler in daemon.get_epoll_handlers() {
        handler.send_exit_event();
    }
    backend.shutdown();
    result
}
