//! A private PostgreSQL cluster owned by betflow.
//!
//! When `DATABASE_URL` is not set, the `betflow` binary keeps its state in a
//! cluster under `{home}/postgres/`; tests use the same code for throwaway
//! clusters. The first process to need the cluster initialises and starts it
//! and stops it again on drop; later processes find it running and attach.
//!
//! PostgreSQL refuses to run as root, so a root process runs every server-side
//! command (`initdb`, `pg_ctl`) as the unprivileged `postgres` user, which then
//! owns `{home}/postgres`.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::{Gid, Pid, Uid, User};
use tracing::{info, warn};

/// Database and role betflow connects as.
const DB_NAME: &str = "betflow";
const DB_USER: &str = "betflow";
/// Unprivileged user that runs the cluster when we are root.
const CLUSTER_USER: &str = "postgres";
/// Binaries that must all come from the same installation.
const SERVER_BINS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
/// Where Debian-style packages install versioned server binaries.
const VERSIONED_ROOT: &str = "/usr/lib/postgresql";
/// How long `pg_ctl` may wait for the server, and we for a server that is
/// starting or stopping under someone else's control.
const SERVER_WAIT: Duration = Duration::from_secs(60);
/// Lines of `server.log` quoted in a start error.
const LOG_TAIL_LINES: usize = 20;
/// Attempts to start the server; a retry only happens when the port we picked
/// was taken by someone else between probing and binding.
const START_ATTEMPTS: usize = 3;

/// Where and how to run the embedded cluster.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// $BETFLOW_HOME; the cluster lives in `{home}/postgres/` (data dir `{home}/postgres/data`).
    pub home: PathBuf,
    /// false for throwaway test clusters: fsync=off, synchronous_commit=off, full_page_writes=off.
    pub durable: bool,
}

/// Why the embedded cluster could not be started, attached to or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH or in \
         {VERSIONED_ROOT}/*/bin; install PostgreSQL server binaries, e.g. `apt-get install \
         postgresql`, or set DATABASE_URL to use an existing database"
    )]
    BinariesNotFound,
    #[error(
        "running as root, but PostgreSQL refuses to run as root and there is no `{CLUSTER_USER}` \
         user to run the embedded cluster as; create an unprivileged user named postgres, or set \
         DATABASE_URL to use an existing database"
    )]
    NoClusterUser,
    #[error("could not look up user `{CLUSTER_USER}`: {0}")]
    UserLookup(#[source] Errno),
    #[error("initdb failed for {data_dir} ({status}): {stderr}")]
    Initdb {
        data_dir: PathBuf,
        status: ExitStatus,
        stderr: String,
    },
    #[error(
        "PostgreSQL failed to start (data dir {data_dir}): {pg_ctl_output}\nlast lines of {log}:\n{log_tail}"
    )]
    Start {
        data_dir: PathBuf,
        pg_ctl_output: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error("PostgreSQL failed to stop (data dir {data_dir}): {stderr}")]
    Stop { data_dir: PathBuf, stderr: String },
    #[error("creating database `{DB_NAME}` failed: {stderr}")]
    CreateDatabase { stderr: String },
    #[error("{path}: {reason}")]
    State { path: PathBuf, reason: String },
    #[error("could not run {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Builds a `map_err` closure that attaches what we were doing and to which path.
fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> EmbeddedError {
    let path = path.to_path_buf();
    move |source| EmbeddedError::Io {
        action,
        path,
        source,
    }
}

/// A running cluster, either started by this process or attached to.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    cluster: Cluster,
    url: String,
    port: u16,
    durable: bool,
    owned: bool,
    stopped: bool,
}

/// What [`EmbeddedPostgres::revive`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The server runs (or this process does not own it, or stopped it).
    Running,
    /// The server was gone and has been started again on the same port;
    /// with the last line its log gave as the reason, when it gave one (a
    /// killed postmaster writes nothing).
    Restarted { last_words: Option<String> },
}

impl EmbeddedPostgres {
    /// Attach to the cluster if it is already running (started by another betflow process),
    /// otherwise initdb on first use and start it. Blocking (call from spawn_blocking or before the runtime).
    pub fn start(opts: &EmbeddedOptions) -> Result<EmbeddedPostgres, EmbeddedError> {
        let bin_dir = find_bin_dir()?;
        let run_as = cluster_user()?;
        // Absolute paths: server commands run with `{home}/postgres` as their cwd.
        let home = std::path::absolute(&opts.home).map_err(io_err("resolving", &opts.home))?;
        prepare_home(&home, run_as)?;
        let cluster = Cluster::new(&home, bin_dir, run_as);
        cluster.create_pg_dir()?;

        // Held until we return, so concurrent betflow processes neither initdb
        // twice nor start two servers on one data dir.
        let _lock = cluster.lock()?;

        if let Some(port) = cluster.running_port()? {
            let password = cluster.read_password()?;
            cluster.ensure_database(port, &password)?;
            info!(data_dir = %cluster.data_dir.display(), port, "attached to running embedded PostgreSQL");
            return Ok(EmbeddedPostgres {
                url: database_url(&password, port),
                cluster,
                port,
                durable: opts.durable,
                owned: false,
                stopped: false,
            });
        }

        if !cluster.is_initialized() {
            cluster.initdb()?;
        }
        let password = cluster.read_password()?;
        if let Some(user) = run_as {
            // Files may have been left owned by root (e.g. by an earlier
            // version, or by hand); the server must be able to write them all.
            chown_recursive(&cluster.pg_dir, user)?;
        }
        let port = cluster.start_server(opts.durable, None)?;
        if let Err(err) = cluster.ensure_database(port, &password) {
            // Do not leave a half-set-up server running; the lock is still held,
            // so stop directly rather than through `stop()`.
            if let Err(stop_err) = cluster.stop_server() {
                warn!(error = %stop_err, "failed to stop embedded PostgreSQL after setup error");
            }
            return Err(err);
        }
        info!(data_dir = %cluster.data_dir.display(), port, "started embedded PostgreSQL");
        Ok(EmbeddedPostgres {
            url: database_url(&password, port),
            cluster,
            port,
            durable: opts.durable,
            owned: true,
            stopped: false,
        })
    }

    /// Starts the server again, on the port the connection URL names, when
    /// this process owns it and its postmaster is gone (killed, crashed,
    /// out of memory). Blocking. A server that is still exiting, or whose
    /// old backends still hold its shared memory, fails to start: the
    /// caller tries again later.
    pub fn revive(&mut self) -> Result<Health, EmbeddedError> {
        if !self.is_down() {
            return Ok(Health::Running);
        }
        let last_words = last_words(&log_tail(&self.cluster.log_file, LOG_TAIL_LINES));
        let _lock = self.cluster.lock()?;
        self.cluster.start_server(self.durable, Some(self.port))?;
        Ok(Health::Restarted { last_words })
    }

    /// True when this process owns the server, has not stopped it, and its
    /// postmaster is gone: what [`EmbeddedPostgres::revive`] would restart.
    pub fn is_down(&self) -> bool {
        if !self.owned || self.stopped {
            return false;
        }
        let pid_path = self.cluster.data_dir.join("postmaster.pid");
        let pid: Option<i32> = fs::read_to_string(&pid_path)
            .ok()
            .and_then(|c| c.lines().next().and_then(|l| l.trim().parse().ok()));
        !pid.is_some_and(|pid| pid_state(pid) != PidState::Dead)
    }

    /// postgres://betflow:<password>@127.0.0.1:<port>/betflow
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True when this process started the server (and so stops it on drop/stop).
    pub fn owned(&self) -> bool {
        self.owned
    }

    /// `{home}/postgres/data`, e.g. to locate `postmaster.pid` or the server files.
    pub fn data_dir(&self) -> &Path {
        &self.cluster.data_dir
    }

    /// Stop the server if owned (pg_ctl stop -m fast, wait). Idempotent.
    pub fn stop(&mut self) -> Result<(), EmbeddedError> {
        if !self.owned || self.stopped {
            return Ok(());
        }
        // Under the lock so a process starting concurrently never attaches to
        // a server that is shutting down.
        let _lock = self.cluster.lock()?;
        self.cluster.stop_server()?;
        self.stopped = true;
        info!(data_dir = %self.cluster.data_dir.display(), "stopped embedded PostgreSQL");
        Ok(())
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            warn!(error = %err, data_dir = %self.cluster.data_dir.display(), "failed to stop embedded PostgreSQL");
        }
    }
}

fn database_url(password: &str, port: u16) -> String {
    format!("postgres://{DB_USER}:{password}@127.0.0.1:{port}/{DB_NAME}")
}

/// Locate a Postgres binary (`initdb`, `pg_ctl`, `postgres`): the same dir for all, searched on PATH then /usr/lib/postgresql/*/bin (highest version first).
pub fn find_bin_dir() -> Result<PathBuf, EmbeddedError> {
    let path_dirs = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in path_dirs {
        let Ok(initdb) = fs::canonicalize(dir.join("initdb")) else {
            continue;
        };
        // PATH often holds symlinks into the real installation (e.g.
        // /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb); prefer
        // the real dir, which also has createdb of the same version.
        let candidates = [
            initdb.parent().map(Path::to_path_buf),
            fs::canonicalize(&dir).ok(),
        ];
        if let Some(found) = candidates
            .into_iter()
            .flatten()
            .find(|d| has_server_bins(d))
        {
            return Ok(found);
        }
    }

    let mut versioned: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(VERSIONED_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let version = name
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versioned.sort_by(|a, b| b.0.cmp(&a.0));
    versioned
        .into_iter()
        .map(|(_, dir)| dir)
        .find(|dir| has_server_bins(dir))
        .ok_or(EmbeddedError::BinariesNotFound)
}

fn has_server_bins(dir: &Path) -> bool {
    SERVER_BINS.iter().all(|bin| is_executable(&dir.join(bin)))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Who the server processes run as: `None` means the current user.
#[derive(Debug, Clone, Copy)]
struct ClusterUser {
    uid: Uid,
    gid: Gid,
}

/// PostgreSQL refuses to run as root, so root hands the cluster to `postgres`.
fn cluster_user() -> Result<Option<ClusterUser>, EmbeddedError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name(CLUSTER_USER) {
        Ok(Some(user)) => Ok(Some(ClusterUser {
            uid: user.uid,
            gid: user.gid,
        })),
        Ok(None) => Err(EmbeddedError::NoClusterUser),
        Err(errno) => Err(EmbeddedError::UserLookup(errno)),
    }
}

/// Creates `home` and, when the cluster runs as another user, lets that user
/// traverse `home` and its ancestors to reach `{home}/postgres`.
fn prepare_home(home: &Path, run_as: Option<ClusterUser>) -> Result<(), EmbeddedError> {
    let created = !home.exists();
    fs::create_dir_all(home).map_err(io_err("creating directory", home))?;
    if run_as.is_none() {
        return Ok(());
    }

    let mode = fs::metadata(home)
        .map_err(io_err("reading metadata of", home))?
        .mode()
        & 0o7777;
    // A private home (e.g. a 0700 tempdir) holds nothing secret of its own:
    // the secrets live in `{home}/postgres`, which stays 0700.
    if created || mode == 0o700 {
        set_mode(home, 0o755)?;
    }
    // Only add search permission where it is missing (e.g. /root is 0700);
    // directories that are already traversable, like / and /tmp, are untouched.
    for dir in home.ancestors() {
        let mode = fs::metadata(dir)
            .map_err(io_err("reading metadata of", dir))?
            .mode()
            & 0o7777;
        if mode & 0o001 == 0 {
            info!(dir = %dir.display(), "adding o+x so the postgres user can reach the embedded cluster");
            set_mode(dir, mode | 0o001)?;
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), EmbeddedError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_err("changing mode of", path))
}

/// Gives `path` and everything below it to the cluster user, without following symlinks.
fn chown_recursive(path: &Path, user: ClusterUser) -> Result<(), EmbeddedError> {
    let meta = fs::symlink_metadata(path).map_err(io_err("reading metadata of", path))?;
    if meta.uid() != user.uid.as_raw() || meta.gid() != user.gid.as_raw() {
        std::os::unix::fs::lchown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .map_err(io_err("changing owner of", path))?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err("listing", path))? {
            let entry = entry.map_err(io_err("listing", path))?;
            chown_recursive(&entry.path(), user)?;
        }
    }
    Ok(())
}

/// Paths and identities of one cluster.
#[derive(Debug)]
struct Cluster {
    bin_dir: PathBuf,
    run_as: Option<ClusterUser>,
    pg_dir: PathBuf,
    data_dir: PathBuf,
    password_file: PathBuf,
    /// initdb's `--pwfile`; only exists while initdb runs.
    initdb_pwfile: PathBuf,
    lock_file: PathBuf,
    log_file: PathBuf,
    /// Written once the `betflow` database exists, so later starts skip createdb.
    db_marker: PathBuf,
}

impl Cluster {
    fn new(home: &Path, bin_dir: PathBuf, run_as: Option<ClusterUser>) -> Cluster {
        let pg_dir = home.join("postgres");
        Cluster {
            bin_dir,
            run_as,
            data_dir: pg_dir.join("data"),
            password_file: pg_dir.join("password"),
            initdb_pwfile: pg_dir.join(".initdb-pwfile"),
            lock_file: pg_dir.join(".lock"),
            log_file: pg_dir.join("server.log"),
            db_marker: pg_dir.join(".database-created"),
            pg_dir,
        }
    }

    /// `{home}/postgres` is private (it holds the password) and belongs to the
    /// cluster user, who creates `data/` and `server.log` in it.
    fn create_pg_dir(&self) -> Result<(), EmbeddedError> {
        match DirBuilder::new().mode(0o700).create(&self.pg_dir) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(io_err("creating directory", &self.pg_dir)(err)),
        }
        if let Some(user) = self.run_as {
            std::os::unix::fs::chown(
                &self.pg_dir,
                Some(user.uid.as_raw()),
                Some(user.gid.as_raw()),
            )
            .map_err(io_err("changing owner of", &self.pg_dir))?;
        }
        Ok(())
    }

    /// Exclusive lock across processes; released when the returned file is dropped.
    fn lock(&self) -> Result<File, EmbeddedError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_file)
            .map_err(io_err("opening lock file", &self.lock_file))?;
        file.lock().map_err(io_err("locking", &self.lock_file))?;
        Ok(file)
    }

    /// A data dir without PG_VERSION is missing or the leftover of an interrupted initdb.
    fn is_initialized(&self) -> bool {
        self.data_dir.join("PG_VERSION").is_file()
    }

    /// Port of a live, ready server on this data dir, if there is one.
    ///
    /// A server that is starting, stopping or not yet reaped after a crash is
    /// waited for, so we neither attach to a dying server nor race it with a
    /// second start. (betflow itself starts and stops under the lock, so this
    /// only happens after crashes or when someone runs pg_ctl by hand.)
    fn running_port(&self) -> Result<Option<u16>, EmbeddedError> {
        let pid_path = self.data_dir.join("postmaster.pid");
        let deadline = Instant::now() + SERVER_WAIT;
        loop {
            let contents = match fs::read_to_string(&pid_path) {
                Ok(contents) => contents,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(io_err("reading", &pid_path)(err)),
            };
            // Layout: pid, data dir, start time, port, socket dir, listen address, shmem key, status.
            let lines: Vec<&str> = contents.lines().map(str::trim).collect();
            let pid = lines.first().and_then(|line| line.parse::<i32>().ok());
            let port = lines.get(3).and_then(|line| line.parse::<u16>().ok());
            let ready = lines.get(7) == Some(&"ready");
            let state = pid.map(pid_state);
            match (state, port) {
                // A stale file from a crashed server: `pg_ctl start` copes with it.
                (Some(PidState::Dead), _) => return Ok(None),
                (Some(PidState::Alive), Some(port)) if ready => return Ok(Some(port)),
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(EmbeddedError::State {
                    path: pid_path,
                    reason: format!(
                        "a server is running but did not become ready within {}s",
                        SERVER_WAIT.as_secs()
                    ),
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn read_password(&self) -> Result<String, EmbeddedError> {
        let contents = fs::read_to_string(&self.password_file)
            .map_err(io_err("reading", &self.password_file))?;
        let password = contents.trim();
        // It goes into a URL unescaped, so only accept what we generate.
        if password.is_empty() || !password.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(EmbeddedError::State {
                path: self.password_file.clone(),
                reason: "password file is empty or not alphanumeric".to_string(),
            });
        }
        Ok(password.to_string())
    }

    /// Creates the cluster with a fresh random password for the `betflow` superuser.
    fn initdb(&self) -> Result<(), EmbeddedError> {
        // initdb refuses a non-empty directory; whatever is there is unusable anyway.
        if self.data_dir.exists() {
            warn!(data_dir = %self.data_dir.display(), "removing incomplete data directory");
            fs::remove_dir_all(&self.data_dir).map_err(io_err("removing", &self.data_dir))?;
        }
        remove_if_exists(&self.db_marker)?;
        let password = random_password()?;
        write_private_file(&self.password_file, &password, None)?;
        // The cluster user may not be able to read `password` (it is ours), so
        // initdb gets its own copy, deleted as soon as initdb is done.
        write_private_file(&self.initdb_pwfile, &password, self.run_as)?;

        info!(data_dir = %self.data_dir.display(), "initializing embedded PostgreSQL cluster");
        let mut pwfile_arg = std::ffi::OsString::from("--pwfile=");
        pwfile_arg.push(&self.initdb_pwfile);
        let program = self.bin_dir.join("initdb");
        let output = self
            .cluster_command(&program)
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-U", DB_USER])
            .arg(pwfile_arg)
            .args(["--auth=scram-sha-256", "-E", "UTF8", "--no-locale"])
            .output();
        let removed = remove_if_exists(&self.initdb_pwfile);
        let output = output.map_err(|source| EmbeddedError::Spawn { program, source })?;
        if !output.status.success() {
            return Err(EmbeddedError::Initdb {
                data_dir: self.data_dir.clone(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        removed
    }

    /// Starts the server on `port`, or a free loopback port, and returns it.
    fn start_server(&self, durable: bool, fixed: Option<u16>) -> Result<u16, EmbeddedError> {
        let program = self.bin_dir.join("pg_ctl");
        let mut attempt = 1;
        loop {
            let port = match fixed {
                Some(p) => p,
                None => free_port()?,
            };
            // No unix socket: its default directory (/var/run/postgresql) may
            // not exist or be writable, and we only connect over TCP.
            let mut server_opts =
                format!("-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''");
            if !durable {
                server_opts
                    .push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
            }
            let log_offset = fs::metadata(&self.log_file)
                .map(|meta| meta.len())
                .unwrap_or(0);
            let output = self
                .cluster_command(&program)
                .arg("-D")
                .arg(&self.data_dir)
                .arg("-l")
                .arg(&self.log_file)
                .args([
                    "-w",
                    "-t",
                    &SERVER_WAIT.as_secs().to_string(),
                    "-o",
                    &server_opts,
                    "start",
                ])
                .output()
                .map_err(|source| EmbeddedError::Spawn {
                    program: program.clone(),
                    source,
                })?;
            if output.status.success() {
                return Ok(port);
            }
            let port_taken = read_from(&self.log_file, log_offset).contains("could not bind");
            if port_taken && attempt < START_ATTEMPTS && fixed.is_none() {
                warn!(
                    port,
                    "port was taken before PostgreSQL could bind it; retrying"
                );
                attempt += 1;
                continue;
            }
            return Err(EmbeddedError::Start {
                data_dir: self.data_dir.clone(),
                pg_ctl_output: command_output_text(&output),
                log: self.log_file.clone(),
                log_tail: log_tail(&self.log_file, LOG_TAIL_LINES),
            });
        }
    }

    /// Stops the server if it runs. The caller holds the lock.
    fn stop_server(&self) -> Result<(), EmbeddedError> {
        let pid_path = self.data_dir.join("postmaster.pid");
        if !pid_path.exists() {
            return Ok(());
        }
        let program = self.bin_dir.join("pg_ctl");
        let output = self
            .cluster_command(&program)
            .arg("-D")
            .arg(&self.data_dir)
            .args([
                "-w",
                "-t",
                &SERVER_WAIT.as_secs().to_string(),
                "-m",
                "fast",
                "stop",
            ])
            .output()
            .map_err(|source| EmbeddedError::Spawn {
                program: program.clone(),
                source,
            })?;
        // pg_ctl also fails when the server was already gone; that is success for us.
        if output.status.success() || !pid_path.exists() {
            return Ok(());
        }
        Err(EmbeddedError::Stop {
            data_dir: self.data_dir.clone(),
            stderr: command_output_text(&output),
        })
    }

    /// Creates the `betflow` database unless a previous start already did.
    fn ensure_database(&self, port: u16, password: &str) -> Result<(), EmbeddedError> {
        if self.db_marker.exists() {
            return Ok(());
        }
        let bundled = self.bin_dir.join("createdb");
        let program = if is_executable(&bundled) {
            bundled
        } else {
            PathBuf::from("createdb")
        };
        // A client: runs as the current user, connecting over TCP with the password.
        let output = Command::new(&program)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                DB_USER,
                "-w",
            ])
            .args(["--maintenance-db=postgres", DB_NAME])
            .env("PGPASSWORD", password)
            // The "already exists" check below reads the message text.
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| EmbeddedError::Spawn {
                program: program.clone(),
                source,
            })?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        // "already exists": a previous start created it but died before the marker.
        if !output.status.success() && !stderr.contains("already exists") {
            return Err(EmbeddedError::CreateDatabase {
                stderr: stderr.trim().to_string(),
            });
        }
        File::create(&self.db_marker).map_err(io_err("creating", &self.db_marker))?;
        Ok(())
    }

    /// A server-side command: runs as the cluster user from `{home}/postgres`
    /// (our own cwd may not be reachable by that user).
    fn cluster_command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.current_dir(&self.pg_dir).stdin(Stdio::null());
        if let Some(user) = self.run_as {
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        command
    }
}

/// What the pid in `postmaster.pid` refers to now.
#[derive(Debug, PartialEq, Eq)]
enum PidState {
    /// No such process, or the pid was reused by another program: the file is stale.
    Dead,
    /// A killed server not yet reaped by its parent (slow in containers
    /// whose init reaps lazily). Postgres' own lock-file check still sees it
    /// as running, so a start must wait for it to disappear.
    Exiting,
    Alive,
}

fn pid_state(pid: i32) -> PidState {
    // pid 0 or negative would address a process group.
    if pid <= 0 {
        return PidState::Dead;
    }
    // EPERM: the process exists but belongs to another user.
    if !matches!(kill(Pid::from_raw(pid), None), Ok(()) | Err(Errno::EPERM)) {
        return PidState::Dead;
    }
    // `/proc/<pid>/stat` is "pid (comm) state ..."; without it, trust kill().
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return PidState::Alive;
    };
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return PidState::Alive;
    };
    let comm = &stat[open + 1..close];
    let state = stat[close + 1..].trim_start().chars().next();
    if matches!(state, Some('Z' | 'X')) {
        PidState::Exiting
    } else if comm == "postgres" || comm == "postmaster" {
        PidState::Alive
    } else {
        PidState::Dead
    }
}

/// Asks the kernel for a free loopback port. Another process may grab it
/// before the server binds; `start_server` retries in that case.
fn free_port() -> Result<u16, EmbeddedError> {
    let addr = Path::new("127.0.0.1:0");
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(io_err("binding", addr))?;
    let port = listener
        .local_addr()
        .map_err(io_err("reading address of", addr))?
        .port();
    Ok(port)
}

/// 24 random bytes, hex encoded: URL-safe without escaping.
fn random_password() -> Result<String, EmbeddedError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| {
        io_err("reading", Path::new("the system's random source"))(std::io::Error::other(e))
    })?;
    Ok(hex::encode(bytes))
}

/// Writes `contents` to a fresh mode-0600 file, optionally owned by `owner`.
fn write_private_file(
    path: &Path,
    contents: &str,
    owner: Option<ClusterUser>,
) -> Result<(), EmbeddedError> {
    // Recreate rather than truncate: the mode only applies to new files.
    remove_if_exists(path)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("creating", path))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(io_err("writing", path))?;
    if let Some(user) = owner {
        std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .map_err(io_err("changing owner of", path))?;
    }
    Ok(())
}

fn remove_if_exists(path: &Path) -> Result<(), EmbeddedError> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_err("removing", path)(err)),
        _ => Ok(()),
    }
}

fn command_output_text(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    format!("{} {}", stdout.trim(), stderr.trim())
        .trim()
        .to_string()
}

/// The part of `path` after byte `offset` (lossy); empty when unreadable.
fn read_from(path: &Path, offset: u64) -> String {
    let mut bytes = Vec::new();
    let read = File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(offset))?;
        file.read_to_end(&mut bytes)
    });
    match read {
        Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

/// The last line of `tail`, since the server last became ready, that says
/// why it stopped: a PANIC, or the postmaster reporting a process it lost.
/// (A client's own FATAL, a refused password, says nothing of that.)
fn last_words(tail: &str) -> Option<String> {
    let since_ready: &str = tail
        .rfind("ready to accept connections")
        .map_or(tail, |at| &tail[at..]);
    // The PANIC says why; the postmaster's lines after it only say that a
    // process went down.
    let last = |pattern: &dyn Fn(&str) -> bool| {
        since_ready
            .lines()
            .rev()
            .find(|l| pattern(l))
            .map(|l| l.trim().to_owned())
    };
    last(&|l| l.contains("PANIC:")).or_else(|| {
        last(&|l| {
            l.contains("was terminated by signal")
                || l.contains("terminating any other active server processes")
        })
    })
}

/// The last `lines` lines of a log that grows across restarts; only its end is read.
fn log_tail(path: &Path, lines: usize) -> String {
    const MAX_TAIL_BYTES: u64 = 64 * 1024;
    let len = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(err) => return format!("(could not read {}: {err})", path.display()),
    };
    let text = read_from(path, len.saturating_sub(MAX_TAIL_BYTES));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_words_of_a_server_log_are_its_last_panic_since_it_was_ready() {
        let tail = "2026-12-07 LOG:  database system is ready to accept connections\n\
                    2026-12-07 PANIC:  could not write to file \"pg_wal/xlogtemp.1\": No space left on device\n\
                    2026-12-07 LOG:  checkpoint starting: time";
        assert_eq!(
            last_words(tail).as_deref(),
            Some("2026-12-07 PANIC:  could not write to file \"pg_wal/xlogtemp.1\": No space left on device")
        );
        assert_eq!(
            last_words("2026-12-07 LOG:  checkpoint starting: time"),
            None
        );
        let crashed = "LOG:  database system is ready to accept connections\n\
                       PANIC:  could not fsync file \"base/1/2\": Input/output error\n\
                       LOG:  checkpointer process (PID 9) was terminated by signal 6: Aborted\n\
                       LOG:  terminating any other active server processes";
        assert!(last_words(crashed).is_some_and(|w| w.starts_with("PANIC:  could not fsync")));
        let before_ready =
            "PANIC:  an old one\nLOG:  database system is ready to accept connections\n\
                            FATAL:  password authentication failed for user \"x\"";
        assert_eq!(last_words(before_ready), None);
    }

    /// Runs one statement through psql and returns its unaligned output.
    fn psql(url: &str, sql: &str) -> String {
        let output = Command::new("psql")
            .args(["-X", "-tA", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    #[test]
    fn start_attach_stop_and_restart() {
        // Declared first so it is removed last, after every server has stopped.
        // A 0700 tempdir: `start` itself must make it traversable for `postgres`.
        let home = tempfile::tempdir().expect("tempdir");
        let opts = EmbeddedOptions {
            home: home.path().to_path_buf(),
            durable: false,
        };

        let first = EmbeddedPostgres::start(&opts).expect("first start");
        assert!(first.owned());
        assert!(first.url().starts_with("postgres://betflow:"));
        assert_eq!(psql(first.url(), "select 1"), "1");
        psql(
            first.url(),
            "create table survives_restart (x int); insert into survives_restart values (42)",
        );

        let password_path = home.path().join("postgres/password");
        let password = fs::read_to_string(&password_path).expect("read password");
        let mode = fs::metadata(&password_path)
            .expect("password metadata")
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!home.path().join("postgres/.initdb-pwfile").exists());

        let second = EmbeddedPostgres::start(&opts).expect("second start");
        assert!(
            !second.owned(),
            "second start should attach to the running server"
        );
        assert_eq!(second.url(), first.url());

        let pid_file = first.data_dir().join("postmaster.pid");
        drop(second);
        assert!(
            pid_file.exists(),
            "dropping an attached handle must not stop the server"
        );
        drop(first);
        assert!(
            !pid_file.exists(),
            "dropping the owner must stop the server"
        );

        let third = EmbeddedPostgres::start(&opts).expect("restart");
        assert!(third.owned());
        assert_eq!(
            fs::read_to_string(&password_path).expect("read password"),
            password,
            "restart must reuse the cluster, not initdb again"
        );
        assert_eq!(psql(third.url(), "select x from survives_restart"), "42");
    }
}
