//! A real PostgreSQL primary with a streaming-replication standby on loopback ports:
//! created with initdb and `pg_basebackup -R`, stopped abruptly, promoted, rewound.
//!
//! Used by the sandbox and by the integration tests. When this process is root the
//! servers run as the `postgres` system user, because PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use super::process::{self, RunAs, run};

/// The application role and database the sandbox creates; the password comes from the
/// caller (the sandbox generates one and keeps it in its state directory).
pub const APP_USER: &str = "lifeboat";
pub const APP_DATABASE: &str = "orders";

/// How to stop a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// Disconnect clients and shut down cleanly.
    Fast,
    /// Abort without a checkpoint, as if the machine died (recovery runs at next start).
    Immediate,
}

/// One PostgreSQL server: its data directory, port and the tools to drive it.
#[derive(Clone, Debug)]
pub struct PgServer {
    pub name: String,
    pub data: PathBuf,
    pub port: u16,
    bin: PathBuf,
    run_as: Option<RunAs>,
}

/// Where the PostgreSQL server programs are: `$LIFEBOAT_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else PATH.
pub fn bin_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("LIFEBOAT_PG_BIN") {
        return PathBuf::from(p);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b).unwrap_or_default()
}

impl PgServer {
    fn new(name: &str, data: PathBuf, port: u16, run_as: Option<RunAs>) -> Self {
        PgServer {
            name: name.to_string(),
            data,
            port,
            bin: bin_dir(),
            run_as,
        }
    }

    fn cmd(&self, program: &str) -> Command {
        let path = if self.bin.as_os_str().is_empty() {
            PathBuf::from(program)
        } else {
            self.bin.join(program)
        };
        let mut c = Command::new(path);
        if let Some(u) = &self.run_as {
            u.apply(&mut c);
        }
        if let Some(parent) = self.data.parent() {
            c.current_dir(parent);
        }
        c
    }

    /// A handle on an existing data directory (e.g. one recorded by the sandbox).
    pub fn open(name: &str, data: PathBuf, port: u16) -> anyhow::Result<PgServer> {
        Ok(PgServer::new(name, data, port, RunAs::for_postgres()?))
    }

    pub fn log(&self) -> PathBuf {
        self.data.with_extension("log")
    }

    /// The Unix socket directory: beside the data directory, never inside it, because
    /// pg_rewind copies the source's data directory and cannot read a socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.data.with_extension("run")
    }

    /// Initializes a new primary: data directory, replication-ready settings, the
    /// application role and database.
    pub fn init_primary(
        name: &str,
        data: PathBuf,
        port: u16,
        app_password: &str,
    ) -> anyhow::Result<PgServer> {
        let run_as = RunAs::for_postgres()?;
        let pg = PgServer::new(name, data, port, run_as);
        pg.prepare_parent()?;
        pg.copy_template()?;
        pg.write_settings()?;
        std::fs::write(
            pg.data.join("pg_hba.conf"),
            "# Loopback only. Replication and the superuser trust loopback (it is a sandbox);\n\
             # the application role needs its password.\n\
             local all all trust\n\
             host replication all 127.0.0.1/32 trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )?;
        pg.chown()?;
        pg.start()?;
        let setup = pg
            .sql(&format!(
                "CREATE ROLE {APP_USER} LOGIN PASSWORD '{}'",
                app_password.replace('\'', "''")
            ))
            .and_then(|_| pg.sql(&format!("CREATE DATABASE {APP_DATABASE} OWNER {APP_USER}")))
            .and_then(|_| pg.grant_failover_privileges());
        if let Err(e) = setup {
            let _ = pg.stop(StopMode::Immediate);
            return Err(e);
        }
        Ok(pg)
    }

    /// What lifeboat's promotion and fence steps need, granted to the sandbox's role
    /// without making it a superuser (PostgreSQL 15+). Function privileges live in each
    /// database, so they are granted in the application database; the rest is
    /// cluster-wide. A standby made from this primary inherits them.
    fn grant_failover_privileges(&self) -> anyhow::Result<()> {
        self.sql_in(
            APP_DATABASE,
            &format!(
                "GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer), pg_reload_conf() TO {APP_USER}"
            ),
        )?;
        self.sql(&format!(
            "GRANT ALTER SYSTEM ON PARAMETER default_transaction_read_only TO {APP_USER}"
        ))?;
        self.sql(&format!("GRANT pg_signal_backend TO {APP_USER}"))?;
        Ok(())
    }

    /// Creates a streaming standby of `primary` with `pg_basebackup -R` and starts it.
    pub fn create_standby(
        primary: &PgServer,
        name: &str,
        data: PathBuf,
        port: u16,
    ) -> anyhow::Result<PgServer> {
        let pg = PgServer::new(name, data, port, primary.run_as.clone());
        pg.prepare_parent()?;
        run(
            pg.cmd("pg_basebackup")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &primary.port.to_string(),
                    "-U",
                    "postgres",
                    "-D",
                ])
                .arg(&pg.data)
                .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"]),
            &format!("pg_basebackup for {name}"),
        )?;
        pg.write_settings()?;
        pg.chown()?;
        pg.start()?;
        Ok(pg)
    }

    /// A fresh data directory, copied from a template initdb'd once per machine (initdb
    /// takes seconds; a copy takes milliseconds, and tests create many pairs).
    fn copy_template(&self) -> anyhow::Result<()> {
        // Its own directory: `prepare_parent` hands the parent to the server user, which
        // must never be a shared directory such as /tmp.
        let root = std::env::temp_dir().join(format!("lifeboat-pg-cache-{}", process::euid()));
        let template = root.join("template");
        if !template.join("PG_VERSION").exists() {
            let staging = root.join(format!("staging-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&staging);
            let maker = PgServer {
                data: staging.clone(),
                ..self.clone()
            };
            maker.prepare_parent()?;
            run(
                maker
                    .cmd("initdb")
                    .arg("-D")
                    .arg(&staging)
                    .args(["-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256"])
                    .args(["-E", "UTF8", "--no-sync", "--no-instructions"]),
                "initdb",
            )
            .context("create the PostgreSQL data directory; is PostgreSQL installed (tests/setup/install-deps.sh)?")?;
            // Another process may have won the race; either copy is a valid template.
            if std::fs::rename(&staging, &template).is_err() {
                let _ = std::fs::remove_dir_all(&staging);
            }
        }
        run(
            Command::new("cp").arg("-a").arg(&template).arg(&self.data),
            &format!("copy the PostgreSQL template for {}", self.name),
        )?;
        Ok(())
    }

    fn prepare_parent(&self) -> anyhow::Result<()> {
        let parent = self.data.parent().context("data directory has a parent")?;
        std::fs::create_dir_all(parent)?;
        // The server user must be able to reach its data directory.
        if let Some(u) = &self.run_as {
            std::os::unix::fs::chown(parent, Some(u.uid), Some(u.gid))?;
            let tmp = std::env::temp_dir();
            let mut dir = parent.parent();
            while let Some(d) = dir {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(d)?.permissions().mode();
                if mode & 0o001 == 0 {
                    // Scratch directories (tempfile makes them 0700) are opened for
                    // traversal; anything else is the operator's to decide.
                    if d.starts_with(&tmp) && d != tmp {
                        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o711))?;
                    } else {
                        bail!(
                            "PostgreSQL runs as user `{}` and cannot reach {} (mode {:o}); put the data under a directory it can traverse, or run lifeboat as a normal user",
                            u.name,
                            d.display(),
                            mode & 0o777
                        );
                    }
                }
                dir = d.parent();
            }
        }
        Ok(())
    }

    fn chown(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.socket_dir())?;
        if let Some(u) = &self.run_as {
            u.chown_tree(&self.data)?;
            u.chown_tree(&self.socket_dir())?;
        }
        Ok(())
    }

    /// Settings appended last (so they win over what a base backup or pg_rewind copied):
    /// this server's own port and socket, and what replication and pg_rewind need.
    fn write_settings(&self) -> anyhow::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.auto.conf"))?;
        writeln!(
            f,
            "\n# written by lifeboat's sandbox\n\
             port = {}\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             wal_level = replica\n\
             max_wal_senders = 10\n\
             wal_keep_size = '256MB'\n\
             wal_log_hints = on\n\
             hot_standby = on\n\
             max_connections = 60\n\
             shared_buffers = '32MB'\n\
             fsync = off\n\
             log_min_messages = warning",
            self.port,
            self.socket_dir().display()
        )?;
        Ok(())
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) -> anyhow::Result<()> {
        run(
            self.cmd("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(self.log())
                .args(["-w", "-t", "60", "start"]),
            &format!("start PostgreSQL {}", self.name),
        )
        .with_context(|| {
            format!(
                "log {}:\n{}",
                self.log().display(),
                process::tail(&self.log(), 15)
            )
        })?;
        Ok(())
    }

    pub fn stop(&self, mode: StopMode) -> anyhow::Result<()> {
        let m = match mode {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        run(
            self.cmd("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", m, "-w", "stop"]),
            &format!("stop PostgreSQL {}", self.name),
        )?;
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.cmd("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("status")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Runs SQL as the superuser over the local socket; returns unaligned output.
    pub fn sql(&self, sql: &str) -> anyhow::Result<String> {
        self.sql_in("postgres", sql)
    }

    pub fn sql_in(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        let out = run(
            self.cmd("psql").arg("-h").arg(self.socket_dir()).args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-Atqc",
                sql,
            ]),
            &format!("psql on {}", self.name),
        )?;
        Ok(out.trim().to_string())
    }

    pub fn in_recovery(&self) -> anyhow::Result<bool> {
        Ok(self.sql("SELECT pg_is_in_recovery()")? == "t")
    }

    /// Promotes a standby and waits until it accepts writes.
    pub fn promote(&self) -> anyhow::Result<()> {
        run(
            self.cmd("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-w", "promote"]),
            &format!("promote PostgreSQL {}", self.name),
        )?;
        Ok(())
    }

    /// Turns this old primary into a streaming standby of `source` (the new primary) with
    /// pg_rewind: checkpoint the source, stop this server, rewind, write the standby
    /// settings, restore this server's own port (pg_rewind copies the source's config),
    /// start.
    pub fn rewind_from(&self, source: &PgServer) -> anyhow::Result<()> {
        source.sql("CHECKPOINT")?;
        if self.is_running() {
            self.stop(StopMode::Fast)?;
        }
        run(
            self.cmd("pg_rewind")
                .arg("--target-pgdata")
                .arg(&self.data)
                .arg(format!(
                    "--source-server=host=127.0.0.1 port={} user=postgres dbname=postgres",
                    source.port
                ))
                .args(["--write-recovery-conf", "--no-sync"]),
            &format!("pg_rewind {} from {}", self.name, source.name),
        )?;
        self.write_settings()?;
        self.chown()?;
        self.start()
    }

    /// Waits until this standby has replayed everything `primary` has written so far.
    pub fn wait_caught_up(&self, primary: &PgServer, timeout: Duration) -> anyhow::Result<()> {
        let target = primary.sql("SELECT pg_current_wal_lsn()")?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let caught = self.sql(&format!(
                "SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
            ))?;
            if caught == "t" {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "standby {} did not replay up to {target} within {}s",
                    self.name,
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Turns TLS on with this certificate and key (PEM, in the data directory as
    /// `server.crt` and `server.key`) and waits until new sessions see it. With
    /// `required`, TCP connections without TLS are refused to everyone but the
    /// superuser (replication and the sandbox's own tools keep their trusted loopback
    /// access). Calling it again swaps the certificate.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str, required: bool) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(self.data.join("server.crt"), cert_pem)?;
        let key = self.data.join("server.key");
        std::fs::write(&key, key_pem)?;
        // PostgreSQL refuses a key others can read.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        if required {
            std::fs::write(
                self.data.join("pg_hba.conf"),
                "local all all trust\n\
                 host replication all 127.0.0.1/32 trust\n\
                 host all postgres 127.0.0.1/32 trust\n\
                 hostssl all all 127.0.0.1/32 scram-sha-256\n\
                 hostnossl all all 127.0.0.1/32 reject\n",
            )?;
        }
        self.chown()?;
        self.sql("ALTER SYSTEM SET ssl = on")?;
        self.sql("SELECT pg_reload_conf()")?;
        // The reload is a signal; wait until a new session runs with the new settings.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.sql("SHOW ssl")? != "on" {
            if std::time::Instant::now() > deadline {
                bail!("PostgreSQL {} did not turn ssl on within 10s", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// A libpq connection string for the application role (password included: for
    /// tests and the sandbox's own clients, never for logs).
    pub fn app_dsn(&self, password: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={APP_USER} password={password} dbname={APP_DATABASE}",
            self.port
        )
    }
}

/// A primary and its streaming standby. Dropping the pair stops both servers unless it
/// was detached (the sandbox keeps them running after `lifeboat sandbox up` exits).
#[derive(Debug)]
pub struct PgPair {
    pub primary: PgServer,
    pub standby: PgServer,
    stop_on_drop: bool,
}

impl PgPair {
    /// Creates both under `dir` (`dir/primary`, `dir/standby`) and starts them.
    pub fn create(
        dir: &Path,
        primary_port: u16,
        standby_port: u16,
        app_password: &str,
    ) -> anyhow::Result<PgPair> {
        let primary =
            PgServer::init_primary("primary", dir.join("primary"), primary_port, app_password)?;
        let standby = match PgServer::create_standby(
            &primary,
            "standby",
            dir.join("standby"),
            standby_port,
        ) {
            Ok(s) => s,
            Err(e) => {
                let _ = primary.stop(StopMode::Immediate);
                return Err(e);
            }
        };
        Ok(PgPair {
            primary,
            standby,
            stop_on_drop: true,
        })
    }

    /// A pair made of servers opened separately.
    pub fn from_servers(primary: PgServer, standby: PgServer) -> PgPair {
        PgPair {
            primary,
            standby,
            stop_on_drop: false,
        }
    }

    /// Keeps the servers running after this value is dropped.
    pub fn detach(mut self) -> (PgServer, PgServer) {
        self.stop_on_drop = false;
        (self.primary.clone(), self.standby.clone())
    }

    /// Stops both servers, ignoring ones already down.
    pub fn stop_all(&self) {
        for s in [&self.primary, &self.standby] {
            if s.is_running() {
                let _ = s.stop(StopMode::Immediate);
            }
        }
    }
}

impl Drop for PgPair {
    fn drop(&mut self) {
        if self.stop_on_drop {
            self.stop_all();
        }
    }
}
