//! A private PostgreSQL cluster owned by the service, for running with zero configuration.
//!
//! Layout under the cluster's root directory:
//! - `pgdata/`: the data directory (`initdb`ed once, reused on every later start);
//! - `run/`: the Unix socket directory (the server listens on no TCP port at all, so it cannot
//!   clash with another server and is reachable only by users who can enter this directory);
//! - `postgres.log`: the server's log.
//!
//! PostgreSQL refuses to run as root. When the service runs as root, the cluster's files are
//! owned by an unprivileged system user (Debian's `postgres` by default) and every server
//! program runs as that user.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use sqlx::postgres::PgConnectOptions;
use std::os::unix::process::CommandExt as _;

use tokio::process::Command;

/// The superuser created by `initdb` in a private cluster.
pub const SUPERUSER: &str = "postgres";
/// The port number; it only names the socket file (`.s.PGSQL.5432`) in the private socket
/// directory, so it never clashes with a server on the machine.
const PORT: u16 = 5432;
/// Unix socket paths are limited to 107 bytes on Linux.
const MAX_SOCKET_PATH: usize = 100;
const OLDEST_SUPPORTED_MAJOR: u32 = 15;

/// How to run a private cluster.
#[derive(Debug, Clone)]
pub struct PrivateClusterOptions {
    /// Root directory of the cluster (created if missing).
    pub root: PathBuf,
    /// Directory of the server programs; found automatically when `None`.
    pub bin_dir: Option<PathBuf>,
    /// System user that runs the server when we are root.
    pub run_as_user: String,
    /// `false` trades crash safety for speed (fsync off): for throw-away test clusters only.
    pub durable: bool,
}

/// What went wrong while preparing or starting the private cluster.
#[derive(Debug, thiserror::Error)]
pub enum PrivateClusterError {
    /// No usable server programs were found.
    #[error(
        "no PostgreSQL {OLDEST_SUPPORTED_MAJOR}+ server programs were found ({searched}). \
         Install them (Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install postgresql@16`) \
         or point DATABASE_URL at a running PostgreSQL server"
    )]
    NoBinaries {
        /// Where we looked.
        searched: String,
    },
    /// Running as root, and the unprivileged user does not exist.
    #[error(
        "running as root, but PostgreSQL refuses to run as root and the system user {0:?} that \
         should run it does not exist. Create it (installing PostgreSQL from your distribution \
         does), set CERT_ASSISTANT_DATABASE__PRIVATE__RUN_AS_USER, or set DATABASE_URL"
    )]
    NoUnprivilegedUser(String),
    /// The socket path would be too long for the operating system.
    #[error(
        "the private cluster directory {0} is too deep for a Unix socket path; set \
         CERT_ASSISTANT_DATABASE__PRIVATE__DATA_DIR to a shorter path"
    )]
    PathTooLong(PathBuf),
    /// A server program failed.
    #[error("{program} failed: {detail}")]
    Program {
        /// The program that failed.
        program: String,
        /// Its own words (stderr), or how it ended.
        detail: String,
    },
    /// A file system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What we were doing.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// A running private cluster. Stop it with [`PrivateCluster::stop`]; if this process did not
/// start it (another process of the service already had it running), `stop` leaves it alone.
#[derive(Debug)]
pub struct PrivateCluster {
    root: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<RunAs>,
    started_here: bool,
}

#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl PrivateCluster {
    /// Finds the server programs, creates the cluster on first use, and starts it unless it is
    /// already running. Returns once the server accepts connections.
    pub async fn start(options: &PrivateClusterOptions) -> Result<Self, PrivateClusterError> {
        let bin_dir = match &options.bin_dir {
            Some(dir) => {
                check_bin_dir(dir)
                    .await
                    .map_err(|why| PrivateClusterError::NoBinaries {
                        searched: format!("{}: {why}", dir.display()),
                    })?
            }
            None => find_bin_dir().await?,
        };
        let run_as = run_as(&options.run_as_user)?;
        let root = absolute(&options.root)?;
        let mut cluster = Self {
            root: socket_check(&root)?,
            bin_dir,
            run_as,
            started_here: false,
        };
        cluster.prepare_directories()?;
        if !cluster.data_dir().join("PG_VERSION").is_file() {
            cluster.initdb().await?;
        }
        cluster.write_settings(options.durable)?;
        if !cluster.is_running().await? {
            cluster.start_server().await?;
            cluster.started_here = true;
        }
        Ok(cluster)
    }

    /// The cluster's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("pgdata")
    }

    /// The Unix socket directory.
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    /// Whether this process started the server (and so will stop it).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Connection options for `database` as the superuser, over the Unix socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(self.socket_dir())
            .port(PORT)
            .username(SUPERUSER)
            .database(database)
    }

    /// The `psql` command line a person can use to look inside.
    pub fn psql_hint(&self, database: &str) -> String {
        format!(
            "psql -h {} -p {PORT} -U {SUPERUSER} {database}",
            self.socket_dir().display()
        )
    }

    /// Stops the server with a fast shutdown if this process started it.
    pub async fn stop(self) -> Result<(), PrivateClusterError> {
        if !self.started_here {
            return Ok(());
        }
        let data_dir = self.data_dir();
        self.run_program(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-D".as_ref(),
                data_dir.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
            ],
        )
        .await
        .map(drop)
    }

    /// Restarts the server (fast shutdown, then start): every connection breaks, as in a real
    /// database restart. For operators' maintenance and for tests of reconnection.
    pub async fn restart(&self) -> Result<(), PrivateClusterError> {
        let data_dir = self.data_dir();
        let log = self.root.join("postgres.log");
        self.run_program(
            "pg_ctl",
            &[
                "restart".as_ref(),
                "-D".as_ref(),
                data_dir.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
            ],
        )
        .await
        .map(drop)
    }

    /// Starts a watcher process that stops the server and deletes the cluster's directory once
    /// the process `pid` has exited. Test runs use it: a test binary has no exit hook.
    pub fn remove_when_process_exits(&self, pid: u32) -> Result<(), PrivateClusterError> {
        // Plain sh, so it outlives us without depending on our binary. SIGINT is PostgreSQL's
        // fast shutdown; root may signal the unprivileged server.
        let script = r#"
            while kill -0 "$1" 2>/dev/null; do sleep 1; done
            if [ -f "$2/pgdata/postmaster.pid" ]; then
                pm=$(head -n 1 "$2/pgdata/postmaster.pid")
                kill -INT "$pm" 2>/dev/null
                for _ in $(seq 1 100); do kill -0 "$pm" 2>/dev/null || break; sleep 0.1; done
            fi
            rm -rf "$2"
        "#;
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("cert-assistant-cluster-reaper")
            .arg(pid.to_string())
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| PrivateClusterError::Io {
                action: "could not start the cleanup watcher for",
                path: self.root.clone(),
                source,
            })?;
        Ok(())
    }

    fn prepare_directories(&self) -> Result<(), PrivateClusterError> {
        for dir in [self.root.clone(), self.socket_dir()] {
            std::fs::create_dir_all(&dir).map_err(|source| PrivateClusterError::Io {
                action: "could not create",
                path: dir.clone(),
                source,
            })?;
            set_mode(&dir, 0o700)?;
            self.give_to_server_user(&dir)?;
        }
        Ok(())
    }

    async fn initdb(&self) -> Result<(), PrivateClusterError> {
        // initdb into a scratch directory and rename it into place, so an interrupted initdb
        // never leaves a half-made data directory that a later start would try to use.
        let scratch = self.root.join("pgdata.initdb");
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch).map_err(|source| PrivateClusterError::Io {
                action: "could not remove the leftover",
                path: scratch.clone(),
                source,
            })?;
        }
        tracing::info!(data_dir = %self.data_dir().display(), "creating the private PostgreSQL cluster");
        self.run_program(
            "initdb",
            &[
                "-D".as_ref(),
                scratch.as_os_str(),
                "-U".as_ref(),
                SUPERUSER.as_ref(),
                "--auth=trust".as_ref(),
                "--encoding=UTF8".as_ref(),
                "--no-locale".as_ref(),
                "--no-instructions".as_ref(),
            ],
        )
        .await?;
        let data_dir = self.data_dir();
        std::fs::rename(&scratch, &data_dir).map_err(|source| PrivateClusterError::Io {
            action: "could not move the new cluster into",
            path: data_dir,
            source,
        })
    }

    /// Our settings live in their own file, included from `postgresql.conf`, rewritten at
    /// every start so a moved directory or a changed option takes effect.
    fn write_settings(&self, durable: bool) -> Result<(), PrivateClusterError> {
        let conf = self.data_dir().join("postgresql.conf");
        let include = "include_if_exists = 'cert-assistant.conf'";
        let current = std::fs::read_to_string(&conf).map_err(|source| PrivateClusterError::Io {
            action: "could not read",
            path: conf.clone(),
            source,
        })?;
        if !current.contains(include) {
            let updated = format!("{current}\n# Settings managed by cert-assistant\n{include}\n");
            write_file(&conf, &updated)?;
        }
        let socket_dir = self.socket_dir().display().to_string().replace('\'', "''");
        let mut settings = format!(
            "# Written by cert-assistant at every start; edit postgresql.conf instead.\n\
             listen_addresses = ''\n\
             unix_socket_directories = '{socket_dir}'\n\
             unix_socket_permissions = 0700\n\
             port = {PORT}\n\
             max_connections = 200\n\
             logging_collector = off\n"
        );
        if !durable {
            settings.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let path = self.data_dir().join("cert-assistant.conf");
        write_file(&path, &settings)?;
        self.give_to_server_user(&path)
    }

    async fn is_running(&self) -> Result<bool, PrivateClusterError> {
        let data_dir = self.data_dir();
        let status = self
            .server_command("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(&data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map_err(|source| PrivateClusterError::Io {
                action: "could not run pg_ctl status for",
                path: data_dir,
                source,
            })?;
        Ok(status.success())
    }

    async fn start_server(&self) -> Result<(), PrivateClusterError> {
        let data_dir = self.data_dir();
        let log = self.root.join("postgres.log");
        let started = std::time::Instant::now();
        self.run_program(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-D".as_ref(),
                data_dir.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
            ],
        )
        .await
        .map_err(|e| match e {
            PrivateClusterError::Program { program, detail } => PrivateClusterError::Program {
                program,
                detail: format!("{detail} (see {})", log.display()),
            },
            other => other,
        })?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            socket_dir = %self.socket_dir().display(),
            "private PostgreSQL started"
        );
        Ok(())
    }

    fn server_command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        command
            .current_dir(&self.root)
            .stdin(Stdio::null())
            // Its own process group: a Ctrl-C in the terminal reaches us, and we stop the
            // server in order, instead of the terminal killing both at once.
            .process_group(0)
            .kill_on_drop(false);
        if let Some(run_as) = self.run_as {
            command.uid(run_as.uid).gid(run_as.gid);
        }
        command
    }

    async fn run_program(
        &self,
        program: &str,
        args: &[&std::ffi::OsStr],
    ) -> Result<String, PrivateClusterError> {
        let output = self
            .server_command(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|source| PrivateClusterError::Io {
                action: "could not run",
                path: self.bin_dir.join(program),
                source,
            })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let detail = match stderr.trim() {
                "" => format!("exited with {}", output.status),
                text => text.to_owned(),
            };
            Err(PrivateClusterError::Program {
                program: program.to_owned(),
                detail,
            })
        }
    }

    fn give_to_server_user(&self, path: &Path) -> Result<(), PrivateClusterError> {
        if let Some(run_as) = self.run_as {
            std::os::unix::fs::chown(path, Some(run_as.uid), Some(run_as.gid)).map_err(
                |source| PrivateClusterError::Io {
                    action: "could not hand over to the server user",
                    path: path.to_owned(),
                    source,
                },
            )?;
        }
        Ok(())
    }
}

/// The default root: under the user's data directory, or `/var/lib` for root.
pub fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/cert-assistant/postgres");
    }
    directories::ProjectDirs::from("", "", "cert-assistant")
        .map(|dirs| dirs.data_dir().join("postgres"))
        .unwrap_or_else(|| PathBuf::from(".cert-assistant/postgres"))
}

fn socket_check(root: &Path) -> Result<PathBuf, PrivateClusterError> {
    let socket = root.join("run").join(format!(".s.PGSQL.{PORT}"));
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(PrivateClusterError::PathTooLong(root.to_owned()));
    }
    Ok(root.to_owned())
}

fn absolute(path: &Path) -> Result<PathBuf, PrivateClusterError> {
    std::path::absolute(path).map_err(|source| PrivateClusterError::Io {
        action: "could not resolve",
        path: path.to_owned(),
        source,
    })
}

fn run_as(user: &str) -> Result<Option<RunAs>, PrivateClusterError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(found)) if !found.uid.is_root() => Ok(Some(RunAs {
            uid: found.uid.as_raw(),
            gid: found.gid.as_raw(),
        })),
        _ => Err(PrivateClusterError::NoUnprivilegedUser(user.to_owned())),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), PrivateClusterError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        PrivateClusterError::Io {
            action: "could not set permissions on",
            path: path.to_owned(),
            source,
        }
    })
}

fn write_file(path: &Path, contents: &str) -> Result<(), PrivateClusterError> {
    std::fs::write(path, contents).map_err(|source| PrivateClusterError::Io {
        action: "could not write",
        path: path.to_owned(),
        source,
    })
}

/// Looks for server programs: `pg_config --bindir`, then `/usr/lib/postgresql/*/bin` (newest
/// first), then every directory of `PATH`.
async fn find_bin_dir() -> Result<PathBuf, PrivateClusterError> {
    let mut candidates = Vec::new();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output().await
        && output.status.success()
    {
        let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !dir.is_empty() {
            candidates.push(PathBuf::from(dir));
        }
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    candidates.extend(versioned.into_iter().map(|(_, dir)| dir));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }

    let mut reasons = Vec::new();
    for dir in &candidates {
        if !dir.join("initdb").is_file() {
            continue;
        }
        match check_bin_dir(dir).await {
            Ok(dir) => return Ok(dir),
            Err(why) => reasons.push(format!("{}: {why}", dir.display())),
        }
    }
    let searched = if reasons.is_empty() {
        "looked in pg_config --bindir, /usr/lib/postgresql/*/bin and PATH".to_owned()
    } else {
        reasons.join("; ")
    };
    Err(PrivateClusterError::NoBinaries { searched })
}

/// Accepts `dir` if it holds `initdb`, `pg_ctl` and a `postgres` of a supported version.
async fn check_bin_dir(dir: &Path) -> Result<PathBuf, String> {
    for program in ["initdb", "pg_ctl", "postgres"] {
        if !dir.join(program).is_file() {
            return Err(format!("no {program}"));
        }
    }
    let output = Command::new(dir.join("postgres"))
        .arg("--version")
        .output()
        .await
        .map_err(|e| format!("postgres --version failed: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let major = parse_major_version(&text).ok_or_else(|| format!("unreadable version {text:?}"))?;
    if major < OLDEST_SUPPORTED_MAJOR {
        return Err(format!(
            "PostgreSQL {major} is too old (need {OLDEST_SUPPORTED_MAJOR}+)"
        ));
    }
    Ok(dir.to_owned())
}

/// `postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)` → 15.
fn parse_major_version(text: &str) -> Option<u32> {
    let after = text.split(")").nth(1)?.trim_start();
    let number: String = after.chars().take_while(char::is_ascii_digit).collect();
    number.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_version_is_read_from_postgres_version_output() {
        assert_eq!(
            parse_major_version("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(
            parse_major_version("postgres (PostgreSQL) 17beta1"),
            Some(17)
        );
        assert_eq!(parse_major_version("garbage"), None);
    }

    #[tokio::test]
    async fn missing_server_programs_are_explained() {
        let empty = tempfile::tempdir().expect("tempdir");
        let error = PrivateCluster::start(&PrivateClusterOptions {
            root: empty.path().join("cluster"),
            bin_dir: Some(empty.path().to_owned()),
            run_as_user: "postgres".to_owned(),
            durable: false,
        })
        .await
        .expect_err("no programs there");
        let message = error.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
        assert!(message.contains("no initdb"), "{message}");
    }

    #[test]
    fn a_deep_directory_is_refused_before_the_socket_path_overflows() {
        let deep = PathBuf::from("/").join("d".repeat(120));
        assert!(matches!(
            socket_check(&deep),
            Err(PrivateClusterError::PathTooLong(_))
        ));
        assert!(socket_check(Path::new("/var/lib/cert-assistant/postgres")).is_ok());
    }
}
