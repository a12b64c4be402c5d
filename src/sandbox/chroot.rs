//! `--sandbox chroot`: the shared directory becomes the process root.

use std::path::{Path, PathBuf};

use super::{Outcome, SandboxError, cstring, open_proc_self_fd};
use crate::oslib::namespace;

/// chroots into `shared_dir`, keeping a handle on `/proc/self/fd` opened before.
pub(super) fn enter(shared_dir: &Path) -> Result<Outcome, SandboxError> {
    let proc_self_fd = open_proc_self_fd()?;
    let dir = cstring(shared_dir)?;
    namespace::chroot(&dir).map_err(|source| SandboxError::Chroot {
        path: shared_dir.into(),
        source,
    })?;
    namespace::chdir(c"/").map_err(|source| SandboxError::Mount {
        what: "change into the new root",
        source,
    })?;
    Ok(Outcome::Serve {
        proc_self_fd,
        root_dir: PathBuf::from("/"),
    })
}
