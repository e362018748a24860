//! A throw-away PostgreSQL for tests, and the PostgreSQL store's factory.
//!
//! [`TestPostgres::shared`] starts one server per test process from the installed server
//! binaries (`initdb` and `pg_ctl` in a temporary directory, on a free loopback port; as the
//! `postgres` user when running as root), or uses `NOTIF_TEST_DATABASE_URL` when set. Each
//! store gets a schema of its own, so tests never see each other's rows. The server stops
//! when the process ends, however it ends: a watchdog waits on a pipe only this process
//! holds. Without PostgreSQL, tests fail saying how to install it — never pass.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::{StoreFactory, StorePorts};
use crate::postgres::{EventDelivery, PostgresConfig, PostgresStore};

/// What to do when no PostgreSQL is available.
const INSTALL: &str = "PostgreSQL is needed for these tests and none was found: install its \
    server binaries (Debian/Ubuntu: `apt-get install -y postgresql`; Fedora: `dnf install \
    postgresql-server`; macOS: `brew install postgresql`), or set NOTIF_TEST_DATABASE_URL to a \
    database the tests may create schemas in";

/// A PostgreSQL server for this test process.
#[derive(Debug)]
pub struct TestPostgres {
    base_url: String,
    /// Holds the server's directory and watchdog (`None` with `NOTIF_TEST_DATABASE_URL`).
    server: Option<Mutex<LocalServer>>,
}

#[derive(Debug)]
struct LocalServer {
    directory: PathBuf,
    port: u16,
    binaries: PathBuf,
    as_postgres: bool,
    _watchdog: (Child, ChildStdin),
    _root: tempfile::TempDir,
}

static SHARED: OnceLock<TestPostgres> = OnceLock::new();
static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
static SCHEMAS: AtomicU64 = AtomicU64::new(0);

impl TestPostgres {
    /// The process's server, started on first use.
    ///
    /// # Panics
    /// When no PostgreSQL is available (saying how to install it) or it cannot start.
    pub fn shared() -> &'static TestPostgres {
        SHARED.get_or_init(|| match std::env::var("NOTIF_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => TestPostgres {
                base_url: url,
                server: None,
            },
            _ => Self::start().unwrap_or_else(|reason| panic!("{reason}")),
        })
    }

    /// A server of the caller's own, for tests that stop and restart it.
    ///
    /// # Panics
    /// When no PostgreSQL server binaries are installed (saying how to install them) or the
    /// server cannot start.
    pub fn dedicated() -> TestPostgres {
        Self::start().unwrap_or_else(|reason| panic!("{reason}"))
    }

    fn start() -> Result<TestPostgres, String> {
        let binaries = server_binaries().ok_or_else(|| INSTALL.to_owned())?;
        let as_postgres = running_as_root();
        let root = tempfile::Builder::new()
            .prefix("notif-test-pg-")
            .tempdir()
            .map_err(|error| format!("a temporary directory: {error}"))?;
        let directory = root.path().join("data");
        if as_postgres {
            run(Command::new("chown").arg("postgres").arg(root.path()))?;
        }
        run(server_command(&binaries, as_postgres, "initdb")
            .arg("-D")
            .arg(&directory)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]))
        .map_err(|error| format!("initdb failed: {error}"))?;
        let port = free_port()?;
        let watchdog = watchdog(&binaries, as_postgres, &directory, root.path())?;
        let server = LocalServer {
            directory,
            port,
            binaries,
            as_postgres,
            _watchdog: watchdog,
            _root: root,
        };
        server.pg_ctl_start()?;
        Ok(TestPostgres {
            base_url: format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable"),
            server: Some(Mutex::new(server)),
        })
    }

    /// A URL to an empty schema of its own.
    ///
    /// # Panics
    /// When the schema cannot be created.
    pub fn fresh_url(&self) -> String {
        let schema = format!(
            "notif_test_{}_{}",
            std::process::id(),
            SCHEMAS.fetch_add(1, Ordering::Relaxed)
        );
        let base = self.base_url.clone();
        let statement = format!("CREATE SCHEMA {schema}");
        on_test_runtime(async move {
            let settings = crate::postgres::connect::settings(&base, None).unwrap();
            let (client, connection) = crate::postgres::connect::connect(&settings)
                .await
                .unwrap_or_else(|error| panic!("connecting to the test PostgreSQL: {error}"));
            let driver = tokio::spawn(connection);
            client.batch_execute(&statement).await.unwrap();
            drop(client);
            let _ = driver.await;
        });
        let separator = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}options=-csearch_path%3D{schema}",
            self.base_url
        )
    }

    /// Stops the server at once (as a crash would), to test what a database outage does.
    ///
    /// # Panics
    /// With `NOTIF_TEST_DATABASE_URL` (that server is not ours to stop), or when `pg_ctl`
    /// fails.
    pub fn stop(&self) {
        self.local().pg_ctl(&["-m", "immediate", "stop"]).unwrap();
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port.
    ///
    /// # Panics
    /// As [`stop`](Self::stop).
    pub fn restart(&self) {
        self.local().pg_ctl_start().unwrap();
    }

    fn local(&self) -> std::sync::MutexGuard<'_, LocalServer> {
        self.server
            .as_ref()
            .expect("NOTIF_TEST_DATABASE_URL's server is not the tests' to stop")
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl LocalServer {
    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400",
            self.port,
            self.directory.parent().unwrap_or(&self.directory).display()
        );
        let log = self
            .directory
            .parent()
            .unwrap_or(&self.directory)
            .join("log");
        self.pg_ctl(&[
            "-w",
            "-t",
            "60",
            "-l",
            &log.display().to_string(),
            "-o",
            &options,
            "start",
        ])
    }

    fn pg_ctl(&self, arguments: &[&str]) -> Result<(), String> {
        run(server_command(&self.binaries, self.as_postgres, "pg_ctl")
            .arg("-D")
            .arg(&self.directory)
            .args(arguments))
        .map_err(|error| format!("pg_ctl {arguments:?} failed: {error}"))
    }
}

/// Runs `future` to completion on the tests' own runtime, from any thread (inside a
/// runtime or not): what the database store starts lives on for the process.
pub(crate) fn on_test_runtime<T: Send>(future: impl std::future::Future<Output = T> + Send) -> T {
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    });
    std::thread::scope(|scope| scope.spawn(|| runtime.block_on(future)).join().unwrap())
}

/// The directory of `initdb` and `pg_ctl`: Debian's layout (the newest version), else
/// `pg_config --bindir`, else the `PATH`.
fn server_binaries() -> Option<PathBuf> {
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    debian.sort_by_key(|bin| {
        bin.parent()
            .and_then(|version| version.file_name())
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u32>().ok())
            .unwrap_or_default()
    });
    if let Some(newest) = debian.pop() {
        return Some(newest);
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        .filter(|bin| bin.join("initdb").is_file());
    from_pg_config.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path).find(|directory| directory.join("initdb").is_file())
        })
    })
}

/// `initdb` refuses to run as root: the server then runs as the `postgres` user.
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn server_command(binaries: &Path, as_postgres: bool, program: &str) -> Command {
    let program = binaries.join(program);
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| error.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("a free port: {error}"))
}

/// A shell that waits until this process's end closes its stdin, then stops the server and
/// removes its directory.
fn watchdog(
    binaries: &Path,
    as_postgres: bool,
    directory: &Path,
    root: &Path,
) -> Result<(Child, ChildStdin), String> {
    let pg_ctl = binaries.join("pg_ctl");
    let stop = if as_postgres {
        format!("runuser -u postgres -- '{}'", pg_ctl.display())
    } else {
        format!("'{}'", pg_ctl.display())
    };
    let script = format!(
        "read _ignored; {stop} -D '{}' -m immediate stop; rm -rf '{}'",
        directory.display(),
        root.display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("starting the server's watchdog: {error}"))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| "the watchdog's stdin".to_owned())?;
    // Nothing is ever written; a flush checks the pipe is open.
    stdin.flush().map_err(|error| error.to_string())?;
    Ok((child, stdin))
}

/// PostgreSQL stores, each fresh one in a schema of its own on the shared test server; a
/// reopen opens the latest schema again.
#[derive(Debug)]
pub struct PostgresFactory {
    events: EventDelivery,
    latest: Mutex<Option<String>>,
}

impl PostgresFactory {
    /// Stores whose events cross nodes by `events`.
    pub fn new(events: EventDelivery) -> Self {
        Self {
            events,
            latest: Mutex::new(None),
        }
    }

    /// The configuration of a store on `url`, as the suites use it.
    pub fn config(&self, url: String) -> PostgresConfig {
        PostgresConfig {
            pool_size: 8,
            events: self.events,
            poll_interval: Duration::from_millis(100),
            ..PostgresConfig::new(url)
        }
    }

    fn open_latest(&self) -> Arc<dyn StorePorts> {
        let url = self
            .latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .expect("a fresh store was made first");
        let config = self.config(url);
        on_test_runtime(async move { Arc::new(PostgresStore::open(&config).await.unwrap()) })
    }
}

impl StoreFactory for PostgresFactory {
    fn fresh(&self) -> Arc<dyn StorePorts> {
        *self
            .latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some(TestPostgres::shared().fresh_url());
        self.open_latest()
    }

    fn reopen(&self, closed: Arc<dyn StorePorts>) -> Arc<dyn StorePorts> {
        drop(closed);
        self.open_latest()
    }
}
