//! Bad and hostile input over HTTP against the real router: each is refused with a 4xx and a clear message
//! and stores nothing; every response carries the security headers. Answer tests run on both backends.

mod common;

use std::collections::BTreeMap;
use std::io::Write;

use app::server::{auth, bundle, study};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::http::{self, answer, send, stored_answers};
use common::*;
use proptest::prelude::*;

on_both_backends!(answer_endpoint_refuses_bad_input);

async fn answer_endpoint_refuses_bad_input(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| x.checks_per_hit = 0).await;
    let r = http::router(&t);
    let a1 = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    let a2 = start(&t, &s.slug, &mturk("A2", "W2")).await.unwrap();
    let (k1, k2) = (a1.key.as_str(), a2.key.as_str());

    let (st, _, body) = send(&r, answer(k1, "0", "left", "800")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(stored_answers(&t).await, 1);

    let refused = [
        // a choice that is not one of the two
        (
            answer(k1, "1", "both", "1"),
            StatusCode::BAD_REQUEST,
            "both",
        ),
        // a token nobody was given, or a platform id where the token belongs
        (
            answer(&"a".repeat(32), "1", "left", "1"),
            StatusCode::NOT_FOUND,
            "no such HIT",
        ),
        (
            answer("mturk:A1", "1", "left", "1"),
            StatusCode::NOT_FOUND,
            "no such HIT",
        ),
        // a trial the HIT does not have
        (
            answer(k1, "987654", "left", "1"),
            StatusCode::NOT_FOUND,
            "this HIT has trials 0 to",
        ),
        // skipping ahead
        (
            answer(k1, "3", "left", "1"),
            StatusCode::CONFLICT,
            "answer trial 1 first",
        ),
        // replayed with a different answer: the first is final
        (
            answer(k1, "0", "right", "1"),
            StatusCode::CONFLICT,
            "first answer is final",
        ),
    ];
    for (req, status, why) in refused {
        let (st, h, body) = send(&r, req).await;
        assert_eq!(st, status, "{body}");
        assert!(body.contains(why), "expected \"{why}\" in {body:?}");
        assert!(h.contains_key(header::CONTENT_SECURITY_POLICY));
    }
    // Not a number where a trial position belongs.
    let (st, _, body) = send(&r, answer(k1, "1; DROP TABLE trials", "left", "1")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    // The identical answer again (network retry) is fine and changes nothing.
    let (st, _, _) = send(&r, answer(k1, "0", "left", "800")).await;
    assert_eq!(st, StatusCode::OK);
    // Oversize body.
    let big = "x".repeat(100_000);
    let (st, _, _) = send(&r, answer(k1, "1", "left", &big)).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        stored_answers(&t).await,
        1,
        "nothing stored by refused requests"
    );

    // A finished HIT takes no further answers.
    complete(&t, k2, false).await;
    let before = stored_answers(&t).await;
    let stored = trials_of(&t, k2).await[0].answer.clone().unwrap();
    let other = if stored == "left" { "right" } else { "left" };
    let (st, _, body) = send(&r, answer(k2, "0", other, "1")).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("HIT is finished"), "{body}");
    assert_eq!(stored_answers(&t).await, before);
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let t = fresh().await;
    let r = http::router(&t);
    for req in [
        Request::get("/healthz").body(Body::empty()).unwrap(),
        Request::get("/admin/login").body(Body::empty()).unwrap(),
        Request::get("/admin").body(Body::empty()).unwrap(),
        Request::get("/media/12345").body(Body::empty()).unwrap(),
        Request::get("/no/such/page.txt")
            .body(Body::empty())
            .unwrap(),
        answer("x", "1", "left", "1"),
    ] {
        let uri = req.uri().to_string();
        let (_, h, _) = send(&r, req).await;
        let csp = h
            .get(header::CONTENT_SECURITY_POLICY)
            .map(|v| v.to_str().unwrap().to_string());
        let csp = csp.unwrap_or_else(|| panic!("{uri}: no CSP"));
        assert!(
            csp.contains(
                "frame-ancestors 'self' https://worker.mturk.com https://workersandbox.mturk.com"
            ),
            "{uri}: {csp}"
        );
        assert_eq!(
            h.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(),
            "nosniff",
            "{uri}"
        );
        assert!(h.contains_key(header::REFERRER_POLICY), "{uri}");
    }
}

#[tokio::test]
async fn admin_needs_a_session_and_a_csrf_token() {
    let t = fresh().await;
    let s = live_study(&t, 3, 1, |_| {}).await;
    let r = http::router(&t);
    // Pages: redirected to the login, nothing shown.
    let (st, h, body) = send(
        &r,
        Request::get(format!("/admin/studies/{}", s.id))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(st.is_redirection(), "{st}");
    assert_eq!(h.get(header::LOCATION).unwrap(), "/admin/login");
    assert!(!body.contains(&s.slug));
    // State changes without a session: 401.
    let uri = format!("/admin/studies/{}/state", s.id);
    let (st, _, body) = send(
        &r,
        http::post_form(
            &uri,
            http::form(&[("csrf", "x"), ("state", "closed")]),
            None,
        ),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("not logged in"), "{body}");
    // With a session but without (or with a wrong) CSRF token: 403.
    let cookie = http::admin_cookie(&t).await;
    for csrf in ["", "wrong"] {
        let (st, _, body) = send(
            &r,
            http::post_form(
                &uri,
                http::form(&[("csrf", csrf), ("state", "closed")]),
                Some(&cookie),
            ),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("CSRF"), "{body}");
    }
    let (st, _, body) = send(
        &r,
        http::post_form(&uri, http::form(&[("state", "closed")]), Some(&cookie)),
    )
    .await;
    assert!(st.is_client_error(), "{st} {body}");
    let now = study::by_id(&t.db, s.id).await.unwrap().unwrap();
    assert_eq!(now.state, study::StudyState::Live, "nothing changed");
}

#[tokio::test]
async fn login_brute_force_is_rate_limited() {
    let t = fresh().await;
    auth::create_admin(&t.db, "boss", "the right password")
        .await
        .unwrap();
    let r = http::router(&t);
    let attempt = |user: &str, pw: &str| {
        let body = http::form(&[("csrf", "tok"), ("username", user), ("password", pw)]);
        http::post_form("/admin/login", body, Some("jndlab_login_csrf=tok"))
    };
    for _ in 0..auth::FREE_FAILURES_PER_USER {
        let (st, _, _) = send(&r, attempt("boss", "guess")).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let (st, h, body) = send(&r, attempt("boss", "the right password")).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.contains("too many failed logins"), "{body}");
    assert!(h.contains_key(header::RETRY_AFTER));
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM admin_sessions")
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert_eq!(n, 0, "no session for a blocked login");
}

/// The value of cookie `name` among a response's Set-Cookie headers.
fn set_cookie_value(h: &axum::http::HeaderMap, name: &str) -> Option<String> {
    h.get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// OWASP: failed logins from a shared address (or anyone guessing) must not lock the real admin out of a
/// browser that logged in before; a password change ends every session; expired sessions are purged.
#[tokio::test]
async fn guessing_cannot_lock_out_a_trusted_browser_and_password_changes_end_sessions() {
    let t = fresh().await;
    auth::create_admin(&t.db, "chief", "the right password")
        .await
        .unwrap();
    let r = http::router(&t);
    let attempt = |pw: &str, device: Option<&str>| {
        let body = http::form(&[("csrf", "tok"), ("username", "chief"), ("password", pw)]);
        let cookie = match device {
            Some(d) => format!("jndlab_login_csrf=tok; {}={d}", auth::DEVICE_COOKIE),
            None => "jndlab_login_csrf=tok".to_string(),
        };
        http::post_form("/admin/login", body, Some(&cookie))
    };
    // The admin logs in once from their browser: it becomes a trusted device.
    let (st, h, _) = send(&r, attempt("the right password", None)).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let device = set_cookie_value(&h, auth::DEVICE_COOKIE).expect("device cookie");
    let session = set_cookie_value(&h, auth::SESSION_COOKIE).expect("session cookie");
    // An attacker guesses from the same address until throttled.
    for _ in 0..auth::FREE_FAILURES_PER_USER {
        let (st, _, _) = send(&r, attempt("guess", None)).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let (st, _, _) = send(&r, attempt("the right password", None)).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "untrusted browsers wait");
    // The admin's browser is not slowed down.
    let (st, _, body) = send(&r, attempt("the right password", Some(&device))).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    // A forged device cookie is no help.
    let (st, _, _) = send(&r, attempt("the right password", Some("forged"))).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    // Changing the password ends the sessions made with the old one.
    let cookie = format!("{}={session}", auth::SESSION_COOKIE);
    let page = || {
        Request::get("/admin")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap()
    };
    let (st, _, _) = send(&r, page()).await;
    assert_eq!(st, StatusCode::OK);
    auth::create_admin(&t.db, "chief", "a new password!")
        .await
        .unwrap();
    let (st, h, _) = send(&r, page()).await;
    assert!(
        st.is_redirection() && h.get(header::LOCATION).unwrap() == "/admin/login",
        "{st}"
    );
    // Expired sessions are deleted.
    let s = auth::login(&t.db, "chief", "a new password!")
        .await
        .unwrap()
        .unwrap();
    assert!(auth::session(&t.db, &s.session).await.unwrap().is_some());
    sqlx::query("UPDATE admin_sessions SET expires_at = 1")
        .execute(&t.db)
        .await
        .unwrap();
    assert!(auth::purge_expired(&t.db).await.unwrap() >= 1);
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM admin_sessions")
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn bundle_upload_that_is_not_a_zip_is_refused() {
    let t = fresh().await;
    let r = http::router(&t);
    let cookie = http::admin_cookie(&t).await;
    let csrf: (String,) = sqlx::query_as("SELECT csrf_token FROM admin_sessions")
        .fetch_one(&t.db)
        .await
        .unwrap();
    let boundary = "XyZbOuNdArY";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"bundle\"; filename=\"evil.zip\"\r\n\
         Content-Type: application/zip\r\n\r\nthis is not a zip archive\r\n--{boundary}--\r\n",
        csrf.0
    );
    let req = Request::post("/admin/import")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header(header::COOKIE, cookie)
        .body(Body::from(body))
        .unwrap();
    let (st, _, body) = send(&r, req).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("evil.zip: not a folder or a readable .zip archive"),
        "{body}"
    );
    assert!(study::list(&t.db).await.unwrap().is_empty());
}

// ---- bundles ------------------------------------------------------------------------------------------

/// The files of a small valid bundle, by archive name.
fn bundle_files(t: &TestDb) -> BTreeMap<String, Vec<u8>> {
    let dir = t.dir.path().join("bundle-src");
    small_bundle(&dir, 3, 2);
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = p.strip_prefix(&dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&p).unwrap());
            }
        }
    }
    files
}

fn zip_of(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in files {
        w.start_file(name.as_str(), opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn manifest(files: &BTreeMap<String, Vec<u8>>) -> serde_json::Value {
    serde_json::from_slice(&files["bundle.json"]).unwrap()
}

fn set_manifest(files: &mut BTreeMap<String, Vec<u8>>, m: &serde_json::Value) {
    files.insert("bundle.json".into(), serde_json::to_vec(m).unwrap());
}

/// Imports the zip with `limits`; returns the error, after checking that nothing was stored or written.
async fn refused(t: &TestDb, files: &BTreeMap<String, Vec<u8>>, limits: bundle::Limits) -> String {
    let err = match bundle::Source::zip_with_limits("up.zip".into(), zip_of(files), limits) {
        Ok(mut src) => bundle::import(&t.db, &t.data_dir(), &mut src)
            .await
            .expect_err("import must be refused"),
        Err(e) => e,
    };
    assert!(
        study::list(&t.db).await.unwrap().is_empty(),
        "no study stored"
    );
    let (images,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM images")
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert_eq!(images, 0);
    let leftovers = std::fs::read_dir(t.data_dir().join("studies"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "no files left behind");
    format!("{err:#}")
}

#[tokio::test]
async fn hostile_bundles_are_refused_with_the_reason() {
    let t = fresh().await;
    let ok = bundle_files(&t);
    let lim = bundle::Limits::default();
    // A valid one imports (the fixture is sound), into a separate database.
    {
        let u = fresh().await;
        let mut src = bundle::Source::zip("ok.zip".into(), zip_of(&ok)).unwrap();
        bundle::import(&u.db, &u.data_dir(), &mut src)
            .await
            .unwrap();
    }
    // Zip-slip: paths that leave the bundle, in the manifest and as archive entry names.
    let mut f = ok.clone();
    let mut m = manifest(&f);
    m["scenes"][0]["reference"] = "../../etc/passwd".into();
    set_manifest(&mut f, &m);
    let e = refused(&t, &f, lim).await;
    assert!(
        e.contains("scenes[0].reference") && e.contains("inside the bundle"),
        "{e}"
    );
    let mut f = ok.clone();
    f.insert("../evil.png".into(), f["s0/ref.png"].clone());
    let mut m = manifest(&f);
    m["scenes"][0]["reference"] = "../evil.png".into();
    set_manifest(&mut f, &m);
    let e = refused(&t, &f, lim).await;
    assert!(e.contains("inside the bundle"), "{e}");
    // Zip bomb: a small archive entry that inflates past the per-file cap...
    let mut f = ok.clone();
    f.insert("s0/ref.png".into(), vec![0u8; 1 << 20]);
    let small = bundle::Limits {
        max_file_bytes: 100_000,
        ..lim
    };
    let e = refused(&t, &f, small).await;
    assert!(e.contains("larger than 100000 bytes uncompressed"), "{e}");
    // ...many files within the cap that add up past the total cap...
    let e = refused(
        &t,
        &ok,
        bundle::Limits {
            max_total_bytes: 2_000,
            ..lim
        },
    )
    .await;
    assert!(e.contains("the bundle is larger than 2000 bytes"), "{e}");
    // ...and too many entries.
    let e = refused(
        &t,
        &ok,
        bundle::Limits {
            max_files: 3,
            ..lim
        },
    )
    .await;
    assert!(e.contains("at most 3 are accepted"), "{e}");
    // Not an image.
    let mut f = ok.clone();
    f.insert("s1/c2.png".into(), b"#!/bin/sh\nrm -rf /\n".to_vec());
    let e = refused(&t, &f, lim).await;
    assert!(
        e.contains("scenes[1].images.c2") && e.contains("not a PNG or JPEG"),
        "{e}"
    );
    // Above the pixel cap (16x12 = 192 pixels).
    let e = refused(
        &t,
        &ok,
        bundle::Limits {
            max_pixels: 100,
            ..lim
        },
    )
    .await;
    assert!(e.contains("16x12 pixels; at most 100"), "{e}");
    // A condition without its image.
    let mut f = ok.clone();
    let mut m = manifest(&f);
    m["scenes"][1]["images"]
        .as_object_mut()
        .unwrap()
        .remove("c1");
    set_manifest(&mut f, &m);
    let e = refused(&t, &f, lim).await;
    assert!(e.contains("missing image for condition \"c1\""), "{e}");
    // No manifest at all.
    let mut f = ok.clone();
    f.remove("bundle.json");
    let e = refused(&t, &f, lim).await;
    assert!(e.contains("no bundle.json"), "{e}");
}

// ---- properties ---------------------------------------------------------------------------------------

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "[a-z0-9:_.-]{0,20}",
        any::<i64>().prop_map(|n| n.to_string()),
        Just(String::new()),
    ]
}

/// Random answer requests never cause a 5xx, and a refused one never stores anything.
#[test]
fn answer_endpoint_property() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (t, hit) = rt.block_on(async {
        let t = fresh().await;
        let s = live_study(&t, 4, 3, |x| x.checks_per_hit = 1).await;
        let hit = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
        (t, hit)
    });
    let r = http::router(&t);
    let positions: Vec<String> = (0..hit.trials.len() + 2).map(|p| p.to_string()).collect();
    let key = prop_oneof![Just(hit.key.clone()), any_text()];
    let trial = prop_oneof![proptest::sample::select(positions), any_text()];
    let side = prop_oneof![
        Just("left".to_string()),
        Just("right".to_string()),
        any_text()
    ];
    let rt_ms = prop_oneof![Just("500".to_string()), any_text()];
    let mut runner = seeded_runner(96);
    runner
        .run(&(key, trial, side, rt_ms), |(k, tr, sd, ms)| {
            rt.block_on(async {
                let before = stored_answers(&t).await;
                let (st, _, body) = send(&r, answer(&k, &tr, &sd, &ms)).await;
                assert!(!st.is_server_error(), "{st}: {body}");
                let after = stored_answers(&t).await;
                if st.is_success() {
                    assert!(after - before <= 1);
                } else {
                    assert_eq!(after, before, "{st}: {body}");
                }
            });
            Ok(())
        })
        .unwrap();
}

/// A property-test runner with a fixed seed: the same cases every run.
fn seeded_runner(cases: u32) -> proptest::test_runner::TestRunner {
    proptest::test_runner::TestRunner::new_with_rng(
        proptest::test_runner::Config {
            cases,
            failure_persistence: None,
            ..Default::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    )
}

/// Random and damaged manifests never panic the importer; a refused one stores nothing.
#[test]
fn bundle_manifest_property() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = rt.block_on(fresh());
    let ok = bundle_files(&t);
    let valid = String::from_utf8(ok["bundle.json"].clone()).unwrap();
    let n = valid.len();
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
    ];
    let paths = [
        "/format",
        "/name",
        "/slug",
        "/conditions",
        "/conditions/0",
        "/conditions/0/key",
        "/scenes",
        "/scenes/0/key",
        "/scenes/0/reference",
        "/scenes/0/images",
        "/scenes/1/images/c0",
        "/settings",
        "/checks",
    ];
    let manifests = prop_oneof![
        "\\PC{0,200}",
        (0..n, 0..n).prop_map(move |(a, b)| {
            let (a, b) = (a.min(b), a.max(b));
            format!("{}{}", &valid[..a], &valid[b..])
        }),
        (proptest::sample::select(paths.to_vec()), leaf).prop_map({
            let m: serde_json::Value = serde_json::from_slice(&ok["bundle.json"]).unwrap();
            move |(p, v)| {
                let mut m = m.clone();
                if let Some(x) = m.pointer_mut(p) {
                    *x = v;
                }
                m.to_string()
            }
        }),
    ];
    let mut runner = seeded_runner(64);
    let ok2 = ok.clone();
    runner
        .run(&manifests, |text| {
            rt.block_on(async {
                let mut f = ok2.clone();
                f.insert("bundle.json".into(), text.into_bytes());
                let before = study::list(&t.db).await.unwrap().len();
                let res = match bundle::Source::zip("p.zip".into(), zip_of(&f)) {
                    Ok(mut src) => bundle::import(&t.db, &t.data_dir(), &mut src)
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                };
                let after = study::list(&t.db).await.unwrap().len();
                match res {
                    Ok(()) => assert_eq!(after, before + 1),
                    Err(e) => {
                        assert_eq!(after, before);
                        assert!(format!("{e:#}").contains("bundle.json"), "{e:#}");
                    }
                }
            });
            Ok(())
        })
        .unwrap();
}
