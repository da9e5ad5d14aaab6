//! End-to-end tests in real headless Chromium (Debian's chromium + chromedriver, driven by fantoccini).
//!
//! Needs: `scripts/setup-browser.sh` (chromium, chromedriver) and `scripts/build-app.sh` (the site with
//! pkg/app.wasm under `${CARGO_TARGET_DIR:-target}/site`), so the tests are `#[ignore]`d; run with
//! `--include-ignored` (the test command does) they fail with what is missing.
//! The tests write screenshots of the trial page and the admin study page to `target/screenshots/`, or to
//! `docs/` (the README's pictures) with `JNDLAB_UPDATE_SCREENSHOTS=1`, so a test run leaves the checkout clean.

#[path = "../../app/tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::server::{AppState, auth, bundle, study, web};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const PASSWORD: &str = "e2e-admin-password";

/// Where a screenshot goes (see the module doc).
fn screenshot_path(name: &str) -> PathBuf {
    let dir = if std::env::var("JNDLAB_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        workspace().join("docs")
    } else {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|d| {
                if d.is_absolute() {
                    d
                } else {
                    workspace().join(d)
                }
            })
            .unwrap_or_else(|| workspace().join("target"))
            .join("screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn site_root() -> PathBuf {
    let t = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let t = PathBuf::from(t);
    let t = if t.is_absolute() {
        t
    } else {
        workspace().join(t)
    };
    t.join("site")
}

fn which(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// Panics with what is missing when the browser or the built site is absent (these tests are
/// `#[ignore]`d for that reason and run with `--include-ignored` where they are installed).
fn prerequisites() {
    let mut missing = Vec::new();
    if !which("chromium") {
        missing.push("chromium (run scripts/setup-browser.sh)".to_string());
    }
    if !which("chromedriver") {
        missing.push("chromedriver (run scripts/setup-browser.sh)".to_string());
    }
    if !site_root().join("pkg/app.wasm").is_file() {
        missing.push(format!(
            "{}/pkg/app.wasm (run scripts/build-app.sh)",
            site_root().display()
        ));
    }
    assert!(
        missing.is_empty(),
        "this browser test needs: {}",
        missing.join(", ")
    );
}

struct Harness {
    t: common::TestDb,
    base: String,
    mturk: String,
    posts: Arc<Mutex<Vec<String>>>,
    driver: Child,
    client: Client,
    _profile: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn free_listener() -> (tokio::net::TcpListener, SocketAddr) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

async fn start() -> Harness {
    start_at(1.0).await
}

/// The harness with Chromium at `scale` device pixels per CSS pixel (a HiDPI laptop is 2).
async fn start_at(scale: f64) -> Harness {
    let t = common::fresh().await;
    auth::create_admin(&t.db, "admin", PASSWORD).await.unwrap();
    // The app under test.
    let (listener, addr) = free_listener().await;
    let state = AppState::new(
        t.db.clone(),
        t.data_dir(),
        web::leptos_options(&site_root(), addr),
        format!("http://{addr}"),
    );
    tokio::spawn(async move {
        axum::serve(listener, web::router(state).into_make_service())
            .await
            .unwrap()
    });
    // A stand-in for MTurk's externalSubmit endpoint that records what it receives.
    let posts = Arc::new(Mutex::new(Vec::new()));
    let (ml, maddr) = free_listener().await;
    let p = posts.clone();
    let mock = axum::Router::new().route(
        "/mturk/externalSubmit",
        axum::routing::post(move |body: String| {
            let p = p.clone();
            async move {
                p.lock().unwrap().push(body);
                axum::response::Html("<p id=\"mturk-received\">received</p>")
            }
        }),
    );
    tokio::spawn(async move { axum::serve(ml, mock).await.unwrap() });
    // chromedriver + headless chromium.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1100,800", format!("--force-device-scale-factor={scale}"),
                     format!("--user-data-dir={}", profile.path().display())]
        }
    });
    let caps = caps.as_object().unwrap().clone();
    let mut client = None;
    for _ in 0..200 {
        let conn = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match conn {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Harness {
        t,
        base: format!("http://{addr}"),
        mturk: format!("http://{maddr}"),
        posts,
        driver,
        client: client.expect("could not start a chromedriver session"),
        _profile: profile,
    }
}

impl Harness {
    /// Waits until the JS expression is truthy (generous bound so a broken page fails instead of hanging).
    async fn wait_js(&self, expr: &str) {
        for _ in 0..1200 {
            let v = self
                .client
                .execute(&format!("return !!({expr});"), vec![])
                .await
                .unwrap();
            if v == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let body = self.client.source().await.unwrap_or_default();
        panic!(
            "timed out waiting for `{expr}`; page:\n{}",
            &body[..body.len().min(3000)]
        );
    }

    async fn body_attr(&self, name: &str) -> Option<String> {
        self.client
            .execute(
                &format!("return document.body.getAttribute('{name}');"),
                vec![],
            )
            .await
            .unwrap()
            .as_str()
            .map(str::to_string)
    }

    async fn press(&self, side: &str) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let key = if side == "left" {
            fantoccini::key::Key::Left
        } else {
            fantoccini::key::Key::Right
        };
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key.into() })
            .then(KeyAction::Up { value: key.into() });
        self.client.perform_actions(actions).await.unwrap();
    }

    async fn live_demo(&self) -> study::Study {
        let mut src = bundle::Source::open(&workspace().join("assets/demo")).unwrap();
        let imp = bundle::import(&self.t.db, &self.t.data_dir(), &mut src)
            .await
            .unwrap();
        study::set_state(&self.t.db, imp.study_id, study::StudyState::Live)
            .await
            .unwrap();
        study::by_id(&self.t.db, imp.study_id)
            .await
            .unwrap()
            .unwrap()
    }

    /// Goes through consent, instructions and all trials by keyboard; checks answered right unless `fail`.
    async fn do_hit(&self, url: &str, key: &str, fail: bool, screenshot: Option<&str>) {
        self.client.goto(url).await.unwrap();
        self.wait_js(
            "document.body.dataset.hydrated === '1' && document.body.dataset.stage === 'consent'",
        )
        .await;
        self.client
            .find(Locator::Id("consent-agree"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.wait_js("document.getElementById('start')").await;
        self.client
            .find(Locator::Id("start"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.wait_js("document.body.dataset.stage === 'trials' && document.body.dataset.trial")
            .await;
        let mut answered = 0;
        loop {
            if self.body_attr("data-stage").await.as_deref() == Some("done") {
                break;
            }
            let Some(trial) = self.body_attr("data-trial").await else {
                // After the last answer an MTurk completion form posts itself to turkSubmitTo at once,
                // so the page may already be the externalSubmit stand-in rather than "done".
                let at = self.client.current_url().await.unwrap();
                assert!(
                    at.path().ends_with("/mturk/externalSubmit"),
                    "no trial shown at {at}"
                );
                break;
            };
            let trial: i64 = trial.parse().unwrap();
            let (kind, correct): (String, Option<String>) = sqlx::query_as(
                "SELECT t.kind, t.correct_side FROM trials t JOIN hits h ON h.id = t.hit_id \
                 WHERE h.assignment_key = $1 AND t.position = $2",
            )
            .bind(key)
            .bind(trial)
            .fetch_one(&self.t.db)
            .await
            .unwrap();
            let side = match (kind.as_str(), correct.as_deref(), fail) {
                ("check", Some(c), false) => c.to_string(),
                ("check", Some("left"), true) => "right".into(),
                ("check", _, true) => "left".into(),
                _ => {
                    if trial % 2 == 0 {
                        "left".into()
                    } else {
                        "right".into()
                    }
                }
            };
            if answered == 0
                && let Some(name) = screenshot
            {
                self.wait_js("Array.from(document.querySelectorAll('#trial img')).every(i => i.complete && i.naturalWidth > 0)").await;
                std::fs::write(
                    screenshot_path(name),
                    self.client.screenshot().await.unwrap(),
                )
                .unwrap();
            }
            // A person takes longer than the study's minimum response time (300 ms by default).
            tokio::time::sleep(Duration::from_millis(350)).await;
            self.press(&side).await;
            answered += 1;
            self.wait_js(&format!(
                "document.body.dataset.stage === 'done' || document.body.dataset.trial !== '{trial}'"
            ))
            .await;
            assert!(answered <= 20, "too many trials");
        }
        let (n, rt): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), MIN(t.rt_ms) FROM trials t JOIN hits h ON h.id = t.hit_id \
             WHERE h.assignment_key = $1 AND t.answer IS NOT NULL",
        )
        .bind(key)
        .fetch_one(&self.t.db)
        .await
        .unwrap();
        assert_eq!(n, answered, "every keyboard answer stored");
        assert!(
            rt >= 20,
            "response times measured in the browser: min {rt} ms"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium, chromedriver and the built site (scripts/setup-browser.sh, scripts/build-app.sh)"]
async fn mturk_worker_completes_a_hit_by_keyboard_and_auto_submits() {
    prerequisites();
    let h = start().await;
    let s = h.live_demo().await;
    let url = format!(
        "{}/s/{}?assignmentId=E2EA1&hitId=E2EH1&workerId=E2EW1&turkSubmitTo={}",
        h.base, s.slug, h.mturk
    );
    h.do_hit(&url, "mturk:E2EA1", false, Some("participant-trial.png"))
        .await;
    // The completion form posts itself to {turkSubmitTo}/mturk/externalSubmit with the assignmentId.
    h.wait_js("document.getElementById('mturk-received')").await;
    let url = h.client.current_url().await.unwrap();
    assert_eq!(url.as_str(), format!("{}/mturk/externalSubmit", h.mturk));
    let posts = h.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 1);
    assert!(posts[0].contains("assignmentId=E2EA1"), "{posts:?}");
    let (status, excluded, checks): (String, i64, i64) = sqlx::query_as(
        "SELECT h.status, h.excluded, (SELECT COUNT(*) FROM trials t WHERE t.hit_id = h.id AND t.kind = 'check') \
         FROM hits h WHERE h.assignment_key = 'mturk:E2EA1'",
    )
    .fetch_one(&h.t.db)
    .await
    .unwrap();
    assert_eq!((status.as_str(), excluded, checks), ("completed", 0, 1));
    // Reloading after completion resubmits rather than starting over.
    let _ = h.client.clone().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium, chromedriver and the built site (scripts/setup-browser.sh, scripts/build-app.sh)"]
async fn mturk_preview_records_nothing() {
    prerequisites();
    let h = start().await;
    let s = h.live_demo().await;
    h.client
        .goto(&format!(
            "{}/s/{}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1",
            h.base, s.slug
        ))
        .await
        .unwrap();
    h.wait_js(
        "document.body.dataset.hydrated === '1' && document.body.dataset.stage === 'preview'",
    )
    .await;
    h.wait_js("document.getElementById('preview-notice') && document.querySelectorAll('#instructions img').length === 3").await;
    assert!(
        h.client.find(Locator::Id("start")).await.is_err(),
        "no start button in preview"
    );
    h.press("left").await;
    let (hits,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM hits")
        .fetch_one(&h.t.db)
        .await
        .unwrap();
    let (trials,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM trials")
        .fetch_one(&h.t.db)
        .await
        .unwrap();
    assert_eq!((hits, trials), (0, 0));
    let _ = h.client.clone().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium, chromedriver and the built site (scripts/setup-browser.sh, scripts/build-app.sh)"]
async fn failed_attention_check_excludes_the_hit() {
    prerequisites();
    let h = start().await;
    let s = h.live_demo().await;
    let url = format!(
        "{}/s/{}?assignmentId=E2EA2&hitId=E2EH2&workerId=E2EW2&turkSubmitTo={}",
        h.base, s.slug, h.mturk
    );
    h.do_hit(&url, "mturk:E2EA2", true, None).await;
    h.wait_js("document.getElementById('mturk-received')").await;
    let (excluded,): (i64,) =
        sqlx::query_as("SELECT excluded FROM hits WHERE assignment_key = 'mturk:E2EA2'")
            .fetch_one(&h.t.db)
            .await
            .unwrap();
    assert_eq!(excluded, 1);
    let items = study::item_progress(&h.t.db, s.id).await.unwrap();
    assert!(
        items.iter().all(|i| i.valid == 0),
        "excluded answers do not count"
    );
    let _ = h.client.clone().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium, chromedriver and the built site (scripts/setup-browser.sh, scripts/build-app.sh)"]
async fn admin_logs_in_imports_a_bundle_and_sees_progress() {
    prerequisites();
    let h = start().await;
    // A zip of the demo bundle, to upload through the form.
    let zip_path = h.t.dir.path().join("upload.zip");
    {
        let f = std::fs::File::create(&zip_path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let demo = workspace().join("assets/demo");
        let mut files = vec![PathBuf::from("bundle.json")];
        for scene in std::fs::read_dir(&demo).unwrap() {
            let scene = scene.unwrap();
            if !scene.file_type().unwrap().is_dir() {
                continue;
            }
            for e in std::fs::read_dir(scene.path()).unwrap() {
                files.push(Path::new(&scene.file_name()).join(e.unwrap().file_name()));
            }
        }
        for rel in files {
            z.start_file(
                format!("demo/{}", rel.display()),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            std::io::Write::write_all(&mut z, &std::fs::read(demo.join(&rel)).unwrap()).unwrap();
        }
        z.finish().unwrap();
    }
    let c = &h.client;
    c.goto(&format!("{}/admin", h.base)).await.unwrap();
    h.wait_js("document.getElementById('login-form')").await;
    c.find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys("admin")
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("wrong-password")
        .await
        .unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    h.wait_js("document.getElementById('login-error')").await;
    c.find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys("admin")
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    h.wait_js("document.getElementById('import-form')").await;
    c.find(Locator::Id("bundle-file"))
        .await
        .unwrap()
        .send_keys(&zip_path.display().to_string())
        .await
        .unwrap();
    c.find(Locator::Id("import"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    h.wait_js("document.getElementById('state') && document.getElementById('state').textContent === 'draft'").await;
    assert!(
        c.find(Locator::Id("external-question"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("<ExternalURL>")
    );
    c.find(Locator::Id("state-live"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    h.wait_js("document.getElementById('state').textContent === 'live'")
        .await;
    let completed = c
        .find(Locator::Id("hits-completed"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(completed, "0");
    // Two participants take part (one fails a check); the admin reloads and sees progress move.
    let uploaded = study::list(&h.t.db).await.unwrap()[0].clone();
    let slug = uploaded.slug.clone();
    // These participants answer in-process, back to back: no minimum response time for them.
    let mut settings = uploaded.settings.clone();
    settings.rules.min_response_ms = 0;
    study::update_settings(&h.t.db, uploaded.id, &settings)
        .await
        .unwrap();
    let p1 = common::start(&h.t, &slug, &common::mturk("PA1", "PW1"))
        .await
        .unwrap();
    common::complete(&h.t, &p1.key, false).await;
    let p2 = common::start(&h.t, &slug, &common::mturk("PA2", "PW2"))
        .await
        .unwrap();
    common::complete(&h.t, &p2.key, true).await;
    c.refresh().await.unwrap();
    h.wait_js("document.getElementById('hits-completed').textContent === '2'")
        .await;
    assert_eq!(
        c.find(Locator::Id("hits-excluded"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "1"
    );
    assert_eq!(
        c.find(Locator::Id("design-filled"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "9"
    );
    std::fs::write(
        screenshot_path("admin-study.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    let _ = h.client.clone().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium, chromedriver and the built site (scripts/setup-browser.sh, scripts/build-app.sh)"]
async fn images_are_shown_one_image_pixel_per_device_pixel_and_aligned() {
    prerequisites();
    for scale in [1.0, 2.0] {
        let h = start_at(scale).await;
        let s = h.live_demo().await;
        let url = format!(
            "{}/s/{}?assignmentId=DPRA&hitId=DPRH&workerId=DPRW&turkSubmitTo={}",
            h.base, s.slug, h.mturk
        );
        h.client.goto(&url).await.unwrap();
        h.wait_js(
            "document.body.dataset.hydrated === '1' && document.body.dataset.stage === 'consent'",
        )
        .await;
        for id in ["consent-agree", "start"] {
            h.wait_js(&format!("document.getElementById('{id}')")).await;
            h.client
                .find(Locator::Id(id))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
        h.wait_js(
            "document.body.dataset.stage === 'trials' && document.body.dataset.dpr && \
             [...document.querySelectorAll('#trial img')].every(i => i.complete && i.naturalWidth > 0)",
        )
        .await;
        let boxes = h
            .client
            .execute(
                "return [window.devicePixelRatio, ...[...document.querySelectorAll('#trial img')].map(i => { \
                   const r = i.getBoundingClientRect(); \
                   return [r.width * devicePixelRatio, r.height * devicePixelRatio, i.naturalWidth, \
                           i.naturalHeight, r.top * devicePixelRatio]; })];",
                vec![],
            )
            .await
            .unwrap();
        let v = boxes.as_array().unwrap();
        assert_eq!(v[0].as_f64(), Some(scale), "the browser's devicePixelRatio");
        let imgs: Vec<Vec<f64>> = v[1..]
            .iter()
            .map(|b| {
                b.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(imgs.len(), 3, "left, reference, right");
        for b in &imgs {
            // rendered size in device pixels == the image's own pixel size
            assert!(
                (b[0] - b[2]).abs() < 0.01 && (b[1] - b[3]).abs() < 0.01,
                "scale {scale}: {b:?}"
            );
        }
        let top = imgs[0][4];
        assert!(
            imgs.iter().all(|b| (b[4] - top).abs() < 0.5),
            "scale {scale}: reference and candidates at different heights: {imgs:?}"
        );
        let _ = h.client.clone().close().await;
    }
}
