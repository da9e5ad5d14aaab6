//! Faults: a database that refuses writes gives a clear 503 and no partial write; `kill -9` of the real
//! server in the middle of a run loses no acknowledged answer, duplicates nothing, strands no HIT, and the
//! participants resume after the restart.

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use app::api::Side;
use app::participant::{self, Client};
use app::server::answer;
use axum::http::StatusCode;
use common::http::{self, send, stored_answers};
use common::*;

on_both_backends!(read_only_database_is_503_and_writes_nothing);

async fn read_only_database_is_503_and_writes_nothing(t: TestDb) {
    let s = live_study(&t, 4, 3, |_| {}).await;
    let hit = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    answer::answer(&t.db, &hit.key, 0, Side::Left, 5)
        .await
        .unwrap();
    // The same database, now refusing writes (the app is already up, so no migrations run).
    let ro_url = match &t.pg {
        Some((admin, name)) => {
            let mut c = <sqlx::AnyConnection as sqlx::Connection>::connect(admin)
                .await
                .unwrap();
            sqlx::query(&format!(
                "ALTER DATABASE {name} SET default_transaction_read_only = on"
            ))
            .execute(&mut c)
            .await
            .unwrap();
            t.url()
        }
        None => t.url().replace("mode=rwc", "mode=ro"),
    };
    let ro = sqlx::AnyPool::connect(&ro_url).await.unwrap();
    let mut ro_t = fresh().await;
    ro_t.db = ro;
    let r = http::router(&ro_t);
    let before = stored_answers(&t).await;
    let (st, _, body) = send(&r, http::answer(&hit.key, "1", "right", "9")).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body.contains("database is unavailable") && body.contains("nothing was saved"),
        "{body}"
    );
    // Starting a new HIT needs writes too.
    let err = start(&ro_t, &s.slug, &mturk("A2", "W2")).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE, "{err:#}");
    // Nothing was written: not the answer, not its HIT's activity time, not the new HIT.
    assert_eq!(stored_answers(&t).await, before);
    let (hits,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM hits")
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert_eq!(hits, 1);
}

const PARTICIPANTS: usize = 12;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn spawn_server(t: &TestDb, site: &std::path::Path, port: u16) -> tokio::process::Child {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_jndlab-app"))
        .arg("--db")
        .arg(t.dir.path().join("test.db"))
        .arg("--data-dir")
        .arg(t.data_dir())
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--starts-per-minute", "100000", "--start-burst", "100000"])
        .arg("--site-root")
        .arg(site)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let c = Client::new(&format!("http://127.0.0.1:{port}"));
    for _ in 0..600 {
        if c.page("/healthz").await.is_ok() {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not come up on port {port}");
}

/// Every participant answers until done or until the server dies; returns the acknowledged answers.
async fn run_participants(c: &Client, slug: &str) -> Vec<participant::Acked> {
    let mut tasks = Vec::new();
    for p in 0..PARTICIPANTS {
        let (c, slug) = (c.clone(), slug.to_string());
        tasks.push(tokio::spawn(async move {
            let params = participant::mturk_params(&format!("A{p}"), &format!("W{p}"));
            let mut acked = Vec::new();
            let Ok(hit) = c.start(&slug, &params).await else {
                return acked;
            };
            for tr in hit.trials.iter().skip(hit.answered as usize) {
                let side = if (tr.position as usize + p).is_multiple_of(2) {
                    Side::Left
                } else {
                    Side::Right
                };
                match c.answer(&hit.key, tr.position, side, 300).await {
                    Ok(_) => acked.push(participant::Acked {
                        key: hit.key.clone(),
                        position: tr.position,
                        side,
                    }),
                    Err(_) => break,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acked
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::test]
async fn kill_9_mid_run_loses_no_acknowledged_answer() {
    let t = fresh().await;
    let s = live_study(&t, 5, 3, |x| {
        x.checks_per_hit = 0;
        x.max_hits_per_worker = 1;
        x.repetitions = 4; // 30 items x 4 >= 12 HITs x 9 pairs
    })
    .await;
    let site = t.dir.path().join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    std::fs::write(site.join("pkg/app.wasm"), b"").unwrap();
    let port = free_port();
    let mut server = spawn_server(&t, &site, port).await;
    let client = Client::new(&format!("http://127.0.0.1:{port}"));
    // Kill the server with SIGKILL once a good part of the answers is in.
    let db = t.db.clone();
    let killer = tokio::spawn(async move {
        loop {
            let (n,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM trials WHERE answer IS NOT NULL")
                    .fetch_one(&db)
                    .await
                    .unwrap();
            if n >= (PARTICIPANTS * 9 / 3) as i64 {
                server.start_kill().unwrap();
                let _ = server.wait().await;
                return n;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let acked = run_participants(&client, &s.slug).await;
    let at_kill = killer.await.unwrap();
    assert!(
        acked.len() < PARTICIPANTS * 9,
        "the kill came mid-run ({} answers acknowledged, {at_kill} stored at the kill)",
        acked.len()
    );
    // Restart on the same database; every acknowledged answer is there, as given, exactly once.
    let port = free_port();
    let _server = spawn_server(&t, &site, port).await;
    assert_eq!(
        participant::lost_answers(&t.db, &acked).await.unwrap(),
        0,
        "an acknowledged answer was lost"
    );
    let stored: HashSet<(String, i64)> = sqlx::query_as::<_, (String, i64)>(
        "SELECT h.token, t.position FROM trials t JOIN hits h ON h.id = t.hit_id WHERE t.answer IS NOT NULL",
    )
    .fetch_all(&t.db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    // Participants resume where they were (the server returns their HIT with the answers so far) and finish.
    let client = Client::new(&format!("http://127.0.0.1:{port}"));
    let resumed = run_participants(&client, &s.slug).await;
    for a in &resumed {
        assert!(
            !stored.contains(&(a.key.clone(), a.position as i64)),
            "trial {} was answered twice",
            a.position
        );
    }
    let (hits, completed): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT) FROM hits",
    )
    .fetch_one(&t.db)
    .await
    .unwrap();
    assert_eq!(
        hits, PARTICIPANTS as i64,
        "one HIT per participant, none duplicated"
    );
    assert_eq!(completed, hits, "no HIT stuck");
    let (per_hit,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT hit_id FROM trials GROUP BY hit_id HAVING COUNT(*) <> 9) x",
    )
    .fetch_one(&t.db)
    .await
    .unwrap();
    assert_eq!(per_hit, 0, "every HIT has exactly its 9 trials");
    assert_eq!(stored_answers(&t).await, (PARTICIPANTS * 9) as i64);
}
