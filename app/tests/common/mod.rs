//! Shared test helpers: a fresh database per test (SQLite file or PostgreSQL database), small generated bundles.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use app::api::EntryParams;
use app::server::{bundle, db, study};
use image::{Rgb, RgbImage};

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
pub async fn fresh_pg() -> Option<TestDb> {
    let admin = pg::cluster()?;
    let (url, name) = pg::create_database(&admin).await;
    let db = db::connect(&url).await.unwrap();
    Some(TestDb {
        db,
        dir: tempfile::tempdir().unwrap(),
        pg: Some((admin, name)),
    })
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
                async fn postgres() {
                    if let Some(t) = $crate::common::fresh_pg().await {
                        super::$name(t).await
                    }
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

/// Imports a small bundle, applies `settings`, sets it live; returns the study.
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
    let mut settings = s.settings();
    edit(&mut settings);
    study::update_settings(&t.db, s.id, &settings)
        .await
        .unwrap();
    study::set_state(&t.db, s.id, study::StudyState::Live)
        .await
        .unwrap();
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

/// (trial id, kind, correct side, design item) of every trial of a HIT, in order.
pub async fn trials_of(t: &TestDb, key: &str) -> Vec<(i64, String, Option<String>, Option<i64>)> {
    sqlx::query_as(
        "SELECT t.id, t.kind, t.correct_side, t.design_item_id FROM trials t JOIN hits h ON h.id = t.hit_id \
         WHERE h.assignment_key = $1 ORDER BY t.position",
    )
    .bind(key)
    .fetch_all(&t.db)
    .await
    .unwrap()
}

/// Answers every trial; checks correctly unless `fail_checks`.
pub async fn complete(t: &TestDb, slug: &str, key: &str, fail_checks: bool) -> app::api::HitView {
    let mut last = None;
    for (id, kind, correct, _) in trials_of(t, key).await {
        let side = match (kind.as_str(), correct.as_deref(), fail_checks) {
            ("check", Some("left"), false) | ("check", Some("right"), true) => "left",
            ("check", _, _) => "right",
            _ => {
                if id % 2 == 0 {
                    "left"
                } else {
                    "right"
                }
            }
        };
        last = Some(
            app::server::assign::answer(&t.db, slug, key, id, side, 1234)
                .await
                .unwrap(),
        );
    }
    last.unwrap()
}
