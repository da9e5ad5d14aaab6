//! A private PostgreSQL cluster for the tests of one test binary: `initdb` into a temporary folder (as the
//! `postgres` user when we are root, since PostgreSQL refuses to run as root), `pg_ctl start` on a free
//! loopback port, and a watchdog process that stops the cluster and deletes the folder once the test binary
//! has exited. Each test gets its own fresh database (`CREATE DATABASE`), dropped when the test ends.
//! `JNDLAB_TEST_PG_URL=postgres://...` uses an existing server instead. The PostgreSQL variants are
//! `#[ignore]`d (a plain `cargo test` counts them as skipped); run with `--include-ignored`, they fail when
//! PostgreSQL is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sqlx::Connection;

static CLUSTER: OnceLock<String> = OnceLock::new();

fn bin_dir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").exists() {
            return Some(p);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `cmd` as the `postgres` user when we are root.
fn as_pg_user(bin: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin).args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    }
}

fn run(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_cluster() -> String {
    if let Ok(url) = std::env::var("JNDLAB_TEST_PG_URL") {
        return url;
    }
    let bin = bin_dir().expect(
        "this test needs PostgreSQL: initdb and pg_ctl not found (scripts/setup-postgres.sh installs them)",
    );
    let dir = tempfile::Builder::new()
        .prefix("jndlab-pg-")
        .tempdir()
        .unwrap()
        .keep();
    if is_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.arg("postgres:").arg(&dir);
                c
            },
            "chown of the cluster folder",
        );
    }
    let data = dir.join("data");
    let data_s = data.display().to_string();
    run(
        as_pg_user(
            &bin.join("initdb"),
            &[
                "-D",
                &data_s,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        ),
        "initdb",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=300",
        dir.display()
    );
    let log = dir.join("log").display().to_string();
    run(
        as_pg_user(
            &bin.join("pg_ctl"),
            &["-D", &data_s, "-l", &log, "-o", &opts, "-w", "start"],
        ),
        "pg_ctl start",
    );
    // The watchdog outlives us: once this test binary is gone it stops the cluster and removes the folder.
    let stop = if is_root() {
        format!("runuser -u postgres -- {}", bin.join("pg_ctl").display())
    } else {
        bin.join("pg_ctl").display().to_string()
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} -D '{data_s}' -m immediate stop; rm -rf '{}'",
        dir.display(),
        pid = std::process::id()
    );
    // Deliberately not waited for: it must outlive this process.
    #[allow(clippy::zombie_processes)]
    let _watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the cluster watchdog");
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

/// The admin URL of the test cluster, started on first use; panics when PostgreSQL is not installed.
pub fn cluster() -> String {
    CLUSTER.get_or_init(start_cluster).clone()
}

/// A fresh empty database on the test cluster: (its URL, its name).
pub async fn create_database(admin_url: &str) -> (String, String) {
    sqlx::any::install_default_drivers();
    let name = format!("jndlab_test_{}", app::server::db::random_token(12));
    let mut c = sqlx::AnyConnection::connect(admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    (format!("{base}/{name}"), name)
}

/// Drops a test database (from a plain thread: this runs in `Drop`, outside any runtime).
pub fn drop_database(admin_url: String, name: String) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            if let Ok(mut c) = sqlx::AnyConnection::connect(&admin_url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c)
                    .await;
                let _ = c.close().await;
            }
        })
    })
    .join();
}
