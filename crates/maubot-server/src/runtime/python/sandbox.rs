//! The operating system's part of a worker's confinement: a Landlock domain, set up in the child
//! between `fork` and `exec`, so that the plugin's code never runs without it.
//!
//! A worker may read and execute the system's libraries and programs, its Python, the venv and
//! the plugin's dependencies, and read its plugin's archive and the few files of `/etc` that
//! name resolution, TLS and time zones need. It may write its own instances' database files
//! (and their journals) and a private temporary folder, which is also its home and working
//! directory. It cannot reach the server's config, the main database, the bots' stores, other
//! plugins' archives or data, or `/proc` (so not the server's either), and cannot signal
//! processes outside its domain. Network access is not restricted.
//!
//! Where the kernel has no Landlock, workers start without it, after one warning.

use std::io;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Once;

use landlock::{
    ABI, Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, Scope,
};
use tokio::process::Command;

const LOG: &str = "maubot.host";
/// The newest Landlock ABI whose rights are asked for; older kernels give what they have.
const ABI_WANTED: ABI = ABI::V6;

/// System paths a Python program needs to read and run: libraries, interpreters, programs.
const SYSTEM: &[&str] = &["/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin"];
/// What of `/etc` name resolution, TLS, time zones, MIME types and the dynamic linker read. Not
/// all of `/etc`: a server's config often lives there.
const ETC: &[&str] = &[
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/crypto-policies",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/mime.types",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/passwd",
    "/etc/group",
    "/etc/os-release",
];
const DEVICES_READ: &[&str] = &["/dev/urandom", "/dev/random", "/dev/zero"];
const DEVICES_WRITE: &[&str] = &["/dev/null"];

/// What one worker may touch.
#[derive(Debug, Default, Clone)]
pub struct Grants {
    /// Read and execute (files or whole folders).
    pub read: Vec<PathBuf>,
    /// Read and write these files, which must exist (instance databases and their journals:
    /// the folder they are in holds other instances' databases and plugin archives too).
    pub write_files: Vec<PathBuf>,
    /// Everything below these folders.
    pub write_dirs: Vec<PathBuf>,
}

impl Grants {
    /// The system paths every worker gets, plus `extra` read and write paths of the config.
    pub fn system(extra_read: &[String], extra_write: &[String]) -> Self {
        let mut grants = Self::default();
        grants.read.extend(
            SYSTEM
                .iter()
                .chain(ETC)
                .chain(DEVICES_READ)
                .map(PathBuf::from),
        );
        grants.read.extend(extra_read.iter().map(PathBuf::from));
        grants
            .write_files
            .extend(DEVICES_WRITE.iter().map(PathBuf::from));
        grants
            .write_dirs
            .extend(extra_write.iter().map(PathBuf::from));
        grants
    }
}

/// A Landlock ruleset ready to be entered by a child.
#[derive(Debug)]
pub struct Sandbox {
    ruleset: OwnedFd,
}

impl Sandbox {
    /// Builds the ruleset for `grants` (paths that do not exist are skipped). `None` where the
    /// kernel has no Landlock.
    pub fn new(grants: &Grants) -> io::Result<Option<Self>> {
        let fs_all = AccessFs::from_all(ABI_WANTED);
        let read = AccessFs::from_read(ABI_WANTED);
        let file_rw = make_file_rw();
        let ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(fs_all)
            .and_then(|r| r.scope(Scope::from_all(ABI_WANTED)))
            .and_then(Ruleset::create)
            .map_err(io::Error::other)?;
        let mut ruleset = ruleset;
        for (paths, access) in [
            (&grants.read, read),
            (&grants.write_files, file_rw),
            (&grants.write_dirs, fs_all),
        ] {
            for path in paths {
                let Some(rule) = rule(path, access) else {
                    continue;
                };
                ruleset = ruleset.add_rule(rule).map_err(io::Error::other)?;
            }
        }
        match Option::<OwnedFd>::from(ruleset) {
            Some(fd) => Ok(Some(Self { ruleset: fd })),
            None => {
                static WARNED: Once = Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(
                        target: LOG,
                        "This kernel has no Landlock: plugin workers run with all the file access \
                         of the server's user (see ARCHITECTURE.md, \"What protects what\")"
                    );
                });
                Ok(None)
            }
        }
    }

    /// The ruleset, for a zygote's child to enter.
    pub fn ruleset(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd as _;
        self.ruleset.as_fd()
    }

    /// Makes `command`'s child enter the sandbox before it executes anything. The sandbox must
    /// live until the child is spawned.
    pub fn confine(&self, command: &mut Command) {
        let ruleset = self.ruleset.as_raw_fd();
        // SAFETY: between fork and exec only async-signal-safe calls are allowed: these are two
        // plain system calls on a descriptor the parent keeps open until `spawn` returns, with no
        // allocation or lock.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || {
                // Required to enter a Landlock domain without privileges; also keeps set-uid
                // programs from raising the plugin's rights.
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// Read, write and truncate, for files.
fn make_file_rw() -> BitFlags<AccessFs> {
    let wanted = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate;
    wanted & AccessFs::from_all(ABI_WANTED)
}

/// A rule for `path`, with what of `access` applies to its kind (a file takes no folder rights).
fn rule(path: &Path, access: BitFlags<AccessFs>) -> Option<PathBeneath<PathFd>> {
    let fd = PathFd::new(path).ok()?;
    let is_dir = std::fs::metadata(path).ok()?.is_dir();
    let access = if is_dir {
        access
    } else {
        access & AccessFs::from_file(ABI_WANTED)
    };
    Some(PathBeneath::new(fd, access))
}

/// The environment a worker (or the zygote) starts with: nothing of the server's but the
/// locale, time zone, proxy and CA settings a plugin's HTTP client may need, with `home` as its
/// home and temporary folder.
pub fn minimal_environment(home: &Path) -> Vec<(String, String)> {
    const PASSED: &[&str] = &[
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
    ];
    let mut env: Vec<(String, String)> = PASSED
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), std::env::var(name).ok()?)))
        .collect();
    let home = home.display().to_string();
    env.extend([
        (
            "PATH".to_owned(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        ),
        ("HOME".to_owned(), home.clone()),
        ("TMPDIR".to_owned(), home),
        ("PYTHONNOUSERSITE".to_owned(), "1".to_owned()),
    ]);
    env
}
