//! The files generated from the code, and the check that the committed copies are current.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};
use vhostfsd::cli::{Args, PACKAGE_VERSION};
use vhostfsd::vhost_user::capabilities;

/// Where the generated files live, relative to the repository root.
pub const DIR: &str = "packaging/generated";

/// Where the packages install the daemon: the path the vhost-user descriptor names.
pub const INSTALLED_BINARY: &str = "/usr/libexec/vhostfsd";

/// Errors of the generator.
#[derive(Debug)]
pub enum Error {
    Io { path: PathBuf, source: io::Error },
    Stale(Vec<PathBuf>),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Stale(paths) => {
                writeln!(f, "generated files differ from what the code generates:")?;
                for p in paths {
                    writeln!(f, "  {}", p.display())?;
                }
                write!(
                    f,
                    "run `cargo xtask gen` and commit {DIR}/ and {FLAGS_DOC} (the man page, \
                     completions and flag reference come from src/cli.rs, the descriptor from \
                     src/vhost_user/capabilities.rs)"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// The repository root (the parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in a subdirectory of the repository")
        .to_path_buf()
}

/// The flag reference, generated too.
pub const FLAGS_DOC: &str = "docs/flags.md";

/// Every generated file: its path relative to the repository root and its content.
pub fn files() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        (format!("{DIR}/vhostfsd.8"), man_page()),
        (
            format!("{DIR}/50-vhostfsd.json"),
            capabilities::descriptor_json(INSTALLED_BINARY).into_bytes(),
        ),
        (FLAGS_DOC.to_string(), flags_markdown().into_bytes()),
    ];
    for (shell, name) in [
        (Shell::Bash, "vhostfsd.bash"),
        (Shell::Zsh, "_vhostfsd"),
        (Shell::Fish, "vhostfsd.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut command(), "vhostfsd", &mut buf);
        out.push((format!("{DIR}/{name}"), buf));
    }
    out
}

/// The clap command, with the package version only: the git commit that `--version` adds
/// would change the man page with every commit.
fn command() -> clap::Command {
    Args::command().version(PACKAGE_VERSION)
}

/// Writes every generated file; returns their paths.
///
/// # Errors
/// A file cannot be written.
pub fn write_all(root: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut written = Vec::new();
    for (name, content) in files() {
        let path = root.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, content).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// The generated files whose committed copy is missing or differs.
///
/// # Errors
/// A file exists but cannot be read.
pub fn stale_files(root: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut stale = Vec::new();
    for (name, content) in files() {
        let path = PathBuf::from(name);
        match std::fs::read(root.join(&path)) {
            Ok(committed) if committed == content => {}
            Ok(_) => stale.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => stale.push(path),
            Err(source) => return Err(Error::Io { path, source }),
        }
    }
    Ok(stale)
}

/// The flag reference in Markdown: every argument with its values, default and help.
fn flags_markdown() -> String {
    let mut cmd = command();
    // Fills in what clap derives (number of values, value names) before we read it.
    cmd.build();
    let mut out = String::from(
        "# vhostfsd flag reference\n\n\
         Generated from the command-line definition (`src/cli.rs`) by `cargo xtask gen`; do \
         not edit. The [user guide](user-guide.md) explains how the flags fit together and \
         how they differ from virtiofsd's; `vhostfsd --help` and `man 8 vhostfsd` say the \
         same as this page.\n",
    );
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let mut names = Vec::new();
        if let Some(long) = arg.get_long() {
            names.push(format!("--{long}"));
        }
        if let Some(short) = arg.get_short() {
            names.push(format!("-{short}"));
        }
        for alias in arg.get_all_aliases().unwrap_or_default() {
            names.push(format!("--{alias}"));
        }
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
        let value = match arg.get_value_names() {
            Some(v) if takes_value => format!(" {}", v.join(" ")),
            _ if takes_value => format!(" {}", id.to_uppercase()),
            _ => String::new(),
        };
        let _ = write!(out, "\n## `{}{value}`\n\n", names.join("`, `"));
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let _ = writeln!(out, "{help}");
        let values: Vec<_> = arg
            .get_possible_values()
            .into_iter()
            .filter(|v| !v.is_hide_set())
            .collect();
        if takes_value && !values.is_empty() {
            out.push('\n');
            for v in values {
                let _ = write!(out, "- `{}`", v.get_name());
                if let Some(h) = v.get_help() {
                    let _ = write!(out, ": {h}");
                }
                out.push('\n');
            }
        }
        let defaults: Vec<_> = arg
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        if !defaults.is_empty() {
            let _ = writeln!(out, "\nDefault: `{}`.", defaults.join(" "));
        }
        if matches!(arg.get_action(), clap::ArgAction::Append) {
            out.push_str("\nMay be given more than once.\n");
        }
    }
    out
}

/// The man page: clap's sections (name, synopsis, description, options), then ours.
fn man_page() -> Vec<u8> {
    let man = Man::new(command())
        .section("8")
        .manual("System Administration");
    let mut out = Vec::new();
    let write = |r: io::Result<()>| r.expect("writing to a Vec cannot fail");
    write(man.render_title(&mut out));
    write(man.render_name_section(&mut out));
    write(man.render_synopsis_section(&mut out));
    write(man.render_description_section(&mut out));
    write(man.render_options_section(&mut out));
    let mut roff = Roff::new();
    extra_sections(&mut roff);
    write(roff.to_writer(&mut out));
    write(man.render_version_section(&mut out));
    out
}

/// What `--help` does not say: how the daemon is run, its files, its exit status.
fn extra_sections(roff: &mut Roff) {
    roff.control("SH", ["USAGE"]);
    roff.text([roman(
        "vhostfsd is a vhost-user backend: the VMM connects to its unix socket, the guest \
         kernel's virtio-fs driver sends FUSE requests over virtqueues, and vhostfsd runs \
         them on the shared directory. Guest memory must be shared with the daemon (a memfd \
         or file memory backend with share=on). vhostfsd does not daemonize; it serves one \
         VMM connection after another and exits on SIGTERM or SIGINT.",
    )]);
    roff.control("PP", []);
    roff.text([roman("With QEMU:")]);
    roff.control("PP", []);
    roff.control("nf", []);
    roff.control("RS", ["4"]);
    for line in [
        "vhostfsd --socket-path /run/vm1-fs.sock --shared-dir /srv/share &",
        "qemu-system-x86_64 -m 1G \\e",
        "  -object memory-backend-memfd,id=mem,size=1G,share=on \\e",
        "  -machine q35,memory-backend=mem \\e",
        "  -chardev socket,id=fs0,path=/run/vm1-fs.sock \\e",
        "  -device vhost-user-fs-pci,chardev=fs0,tag=share ...",
        "# in the guest:",
        "mount -t virtiofs share /mnt",
    ] {
        roff.text([roman(line)]);
    }
    roff.control("RE", []);
    roff.control("fi", []);
    roff.control("PP", []);
    roff.text([
        roman("libvirt starts vhostfsd itself for a domain with "),
        bold("<filesystem type='mount'><driver type='virtiofs'/>"),
        roman(", using the binary named in the vhost-user descriptor and passing the socket with "),
        bold("--fd"),
        roman("."),
    ]);

    roff.control("SH", ["FILES"]);
    let files: [(&str, String); 5] = [
        (
            "/usr/share/qemu/vhost-user/50-vhostfsd.json",
            format!(
                "vhost-user backend descriptor (type \"{}\", binary {INSTALLED_BINARY}); \
                 libvirt reads it to find the daemon, then runs it with \
                 --print-capabilities.",
                capabilities::TYPE
            ),
        ),
        (
            "/etc/vhostfsd/INSTANCE.conf",
            "Settings of the systemd instance vhostfsd@INSTANCE.service: SHARED_DIR and \
             VHOSTFSD_ARGS."
                .to_string(),
        ),
        (
            "/usr/lib/systemd/system/vhostfsd@.service",
            "One daemon per shared directory, started by its socket (Type=notify).".to_string(),
        ),
        (
            "/usr/lib/systemd/system/vhostfsd@.socket",
            "The listening socket /run/vhostfsd/INSTANCE.sock, passed to the daemon by \
             systemd (LISTEN_FDS)."
                .to_string(),
        ),
        (
            "/usr/share/doc/vhostfsd/",
            "User guide, flag reference, example configuration.".to_string(),
        ),
    ];
    for (path, what) in files {
        roff.control("TP", []);
        roff.text([bold(path)]);
        roff.text([roman(what)]);
    }

    roff.control("SH", ["ENVIRONMENT"]);
    roff.control("TP", []);
    roff.text([bold("LISTEN_FDS"), roman(", "), bold("LISTEN_PID")]);
    roff.text([roman(
        "Socket activation: with neither --socket-path nor --fd, the daemon serves the one \
         listening socket that systemd passes as fd 3.",
    )]);
    roff.control("TP", []);
    roff.text([bold("NOTIFY_SOCKET")]);
    roff.text([roman(
        "When set (systemd Type=notify), the daemon sends READY=1 once it accepts \
         connections.",
    )]);

    roff.control("SH", ["EXIT STATUS"]);
    roff.text([roman(
        "0 after SIGTERM or SIGINT, or after --print-capabilities, --help or --version; 1 \
         when the configuration is wrong or the daemon cannot serve (the message says what \
         to check); 2 for a command line clap cannot parse.",
    )]);

    roff.control("SH", ["SEE ALSO"]);
    let mut see_also = String::new();
    for (i, (page, section)) in [
        ("qemu-system-x86_64", "1"),
        ("virsh", "1"),
        ("systemd.socket", "5"),
        ("mount", "8"),
    ]
    .iter()
    .enumerate()
    {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(see_also, "{sep}{page}({section})");
    }
    roff.text([roman(see_also)]);
    roff.text([
        roman(". The user guide: "),
        italic("/usr/share/doc/vhostfsd/user-guide.md"),
        roman("."),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_reference_lists_every_flag() {
        let doc = flags_markdown();
        for arg in command().get_arguments() {
            if let Some(long) = arg.get_long()
                && long != "help"
                && long != "version"
            {
                assert!(doc.contains(&format!("`--{long}")), "--{long} missing");
            }
        }
    }

    #[test]
    fn committed_copies_are_current() {
        let stale = stale_files(&repo_root()).unwrap();
        assert!(stale.is_empty(), "{}", Error::Stale(stale));
    }

    #[test]
    fn man_page_lists_every_long_flag() {
        let page = String::from_utf8(man_page()).unwrap();
        for arg in command().get_arguments() {
            if let Some(long) = arg.get_long() {
                // roff escapes '-' as '\-'.
                let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(
                    page.contains(&escaped),
                    "--{long} missing from the man page"
                );
            }
        }
    }

    #[test]
    fn descriptor_names_the_installed_binary_and_type() {
        let json = capabilities::descriptor_json(INSTALLED_BINARY);
        assert!(json.contains(&format!("\"binary\": \"{INSTALLED_BINARY}\"")));
        assert!(json.contains(&format!("\"type\": \"{}\"", capabilities::TYPE)));
    }
}
