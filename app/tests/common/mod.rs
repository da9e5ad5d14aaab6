//! Shared test helpers: a fresh database per test (SQLite file or PostgreSQL database), small generated bundles.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use app::api::{AnswerAck, EntryParams, HitView, Side};
use app::participant::Client;
use app::server::fault::AppError;
use app::server::{AppState, answer, assign, bundle, db, limits, study, web};
use image::{Rgb, RgbImage};

pub mod crowd;
pub mod http;
pub mod pg;

pub struct TestDb {
    pub db: db::Db,
    pub dir: tempfile::TempDir,
    /// PostgreSQL: (admin URL, database name), dropped with the TestDb.
    pub pg: Option<(String, String)>,
}

impl TestDb {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    /// The URL of this test's database (for a second pool = a second app instance).
    pub fn url(&self) -> String {
        match &self.pg {
            Some((admin, name)) => format!("{}/{name}", admin.rsplit_once('/').unwrap().0),
            None => db::sqlite_url(&self.dir.path().join("test.db")),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            pg::drop_database(admin, name);
        }
    }
}

/// A fresh SQLite database file in a fresh temporary folder.
pub async fn fresh() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let db = db::open(&dir.path().join("test.db")).await.unwrap();
    TestDb { db, dir, pg: None }
}

/// A fresh PostgreSQL database on the test cluster, or None (with a message) when PostgreSQL is absent.
pub async fn fresh_pg() -> TestDb {
    let admin = pg::cluster();
    let (url, name) = pg::create_database(&admin).await;
    let db = db::connect(&url).await.unwrap();
    TestDb {
        db,
        dir: tempfile::tempdir().unwrap(),
        pg: Some((admin, name)),
    }
}

/// Runs each named `async fn NAME(t: TestDb)` twice, as `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::common::fresh().await).await
                }
                #[tokio::test]
                #[ignore = "needs PostgreSQL (initdb and pg_ctl: scripts/setup-postgres.sh, or JNDLAB_TEST_PG_URL)"]
                async fn postgres() {
                    super::$name($crate::common::fresh_pg().await).await
                }
            }
        )*
    };
}

/// Writes a small bundle: `conditions` conditions x `scenes` scenes of 16x12 images.
pub fn small_bundle(dir: &Path, conditions: usize, scenes: usize) {
    let mut scene_json = Vec::new();
    for s in 0..scenes {
        let sd = dir.join(format!("s{s}"));
        std::fs::create_dir_all(&sd).unwrap();
        let base = RgbImage::from_fn(16, 12, |x, y| {
            Rgb([(x * 15) as u8, (y * 20) as u8, (s * 60) as u8])
        });
        base.save(sd.join("ref.png")).unwrap();
        let mut images = serde_json::Map::new();
        for c in 0..conditions {
            let img = RgbImage::from_fn(16, 12, |x, y| {
                let p = base.get_pixel(x, y).0;
                Rgb([p[0].saturating_add(c as u8 * 10), p[1], p[2]])
            });
            img.save(sd.join(format!("c{c}.png"))).unwrap();
            images.insert(format!("c{c}"), serde_json::json!(format!("s{s}/c{c}.png")));
        }
        scene_json.push(serde_json::json!({"key": format!("s{s}"), "reference": format!("s{s}/ref.png"), "images": images}));
    }
    let conds: Vec<_> = (0..conditions)
        .map(|c| serde_json::json!({"key": format!("c{c}")}))
        .collect();
    let manifest = serde_json::json!({
        "format": "jndlab-bundle/1", "name": "Test study", "slug": "test",
        "conditions": conds, "scenes": scene_json,
    });
    std::fs::write(
        dir.join("bundle.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

/// Imports a small bundle, applies `settings`, sets it live; returns the study. Answers in these tests come
/// back to back, so the minimum response time starts at 0 (tests of that rule set it).
pub async fn live_study(
    t: &TestDb,
    conditions: usize,
    scenes: usize,
    edit: impl FnOnce(&mut study::StudySettings),
) -> study::Study {
    let bdir = t.dir.path().join("bundle");
    small_bundle(&bdir, conditions, scenes);
    let mut src = bundle::Source::open(&bdir).unwrap();
    let imp = bundle::import(&t.db, &t.data_dir(), &mut src)
        .await
        .unwrap();
    let s = study::by_id(&t.db, imp.study_id).await.unwrap().unwrap();
    let mut settings = s.settings.clone();
    settings.rules.min_response_ms = 0;
    edit(&mut settings);
    study::update_settings(&t.db, s.id, &settings)
        .await
        .unwrap();
    study::set_state(&t.db, s.id, study::StudyState::Live)
        .await
        .unwrap();
    study::by_id(&t.db, s.id).await.unwrap().unwrap()
}

pub async fn reload(t: &TestDb, s: &study::Study) -> study::Study {
    study::by_id(&t.db, s.id).await.unwrap().unwrap()
}

pub fn mturk(assignment: &str, worker: &str) -> EntryParams {
    EntryParams {
        assignment_id: Some(assignment.into()),
        hit_id: Some("HIT1".into()),
        worker_id: Some(worker.into()),
        turk_submit_to: Some("https://workersandbox.mturk.com".into()),
        ..Default::default()
    }
}

/// Starts a HIT in-process (no HTTP), seeded so the design tests are exact.
pub async fn start(t: &TestDb, slug: &str, p: &EntryParams) -> Result<HitView, AppError> {
    assign::start(&t.db, slug, p, "test-browser", Some(7)).await
}

/// One stored trial of a HIT.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredTrial {
    pub position: i64,
    pub kind: String,
    pub correct_side: Option<String>,
    pub design_item_id: Option<i64>,
    pub left_condition: Option<String>,
    pub right_condition: Option<String>,
    pub answer: Option<String>,
}

/// Every trial of the HIT with this token, in order (what the database knows and the page does not).
pub async fn trials_of(t: &TestDb, token: &str) -> Vec<StoredTrial> {
    sqlx::query_as(
        "SELECT t.position, t.kind, t.correct_side, t.design_item_id, cl.key AS left_condition, \
         cr.key AS right_condition, t.answer FROM trials t JOIN hits h ON h.id = t.hit_id \
         LEFT JOIN conditions cl ON cl.id = t.left_condition_id LEFT JOIN conditions cr ON cr.id = t.right_condition_id \
         WHERE h.token = $1 ORDER BY t.position",
    )
    .bind(token)
    .fetch_all(&t.db)
    .await
    .unwrap()
}

/// The side that answers a check right (or wrong).
pub fn check_side(correct: Option<&str>, right: bool) -> Side {
    let c = Side::parse(correct.unwrap_or("left")).unwrap();
    match (c, right) {
        (c, true) => c,
        (Side::Left, false) => Side::Right,
        (Side::Right, false) => Side::Left,
    }
}

/// Answers every open trial in order; checks correctly unless `fail_checks`; pairs alternate sides.
pub async fn complete(t: &TestDb, token: &str, fail_checks: bool) -> AnswerAck {
    let mut last = None;
    for tr in trials_of(t, token)
        .await
        .into_iter()
        .filter(|x| x.answer.is_none())
    {
        let side = if tr.kind == "check" {
            check_side(tr.correct_side.as_deref(), !fail_checks)
        } else if tr.position % 2 == 0 {
            Side::Left
        } else {
            Side::Right
        };
        last = Some(
            answer::answer(&t.db, token, tr.position as u32, side, 1234)
                .await
                .unwrap(),
        );
    }
    last.unwrap()
}

/// A server for this test's database on an ephemeral loopback port (HTTP-level tests), with these limits
/// and a seeded assignment; returns a client for it.
pub async fn serve(t: &TestDb, limits: limits::Limits) -> (Client, tokio::task::JoinHandle<()>) {
    let mut state = AppState::new(
        t.db.clone(),
        t.data_dir(),
        web::leptos_options(Path::new("target/site"), "127.0.0.1:0".parse().unwrap()),
        "http://127.0.0.1".into(),
    );
    state.limiter = limits::Limiter::new(limits);
    state.assign_seed = Some(11);
    let (addr, handle) = web::spawn_state(state).await.unwrap();
    (Client::new(&format!("http://{addr}")), handle)
}

/// Limits that never get in the way of a test that is not about them.
pub fn generous() -> limits::Limits {
    limits::Limits::unlimited()
}

/// Pushes a HIT's last activity `ms` into the past (as if its participant had left that long ago).
pub async fn age_hit(t: &TestDb, token: &str, ms: i64) {
    sqlx::query("UPDATE hits SET last_seen_at = last_seen_at - $1, shown_at = shown_at - $1 WHERE token = $2")
        .bind(ms)
        .bind(token)
        .execute(&t.db)
        .await
        .unwrap();
}

/// `n` standard normal draws from a seeded ChaCha8 stream.
pub fn normals(n: usize, seed: u64) -> Vec<f64> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| rng.sample(rand_distr::StandardNormal))
        .collect()
}

/// A seeded generator for the simulated participants.
pub fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}
