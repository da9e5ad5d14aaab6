//! Bad and hostile input over HTTP against the real router: each is refused with a 4xx and a clear message
//! and stores nothing; every response carries the security headers. Answer tests run on both backends.

mod common;

use app::server::{assign, auth, study};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::http::{self, answer, send, stored_answers};
use common::*;

on_both_backends!(answer_endpoint_refuses_bad_input);

async fn answer_endpoint_refuses_bad_input(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| x.checks_per_hit = 0).await;
    let r = http::router(&t);
    let a1 = assign::start(&t.db, &s.slug, &mturk("A1", "W1"))
        .await
        .unwrap();
    let a2 = assign::start(&t.db, &s.slug, &mturk("A2", "W2"))
        .await
        .unwrap();
    let (t1, t2) = (a1.trials[0].id.to_string(), a2.trials[0].id.to_string());

    let (st, _, body) = send(&r, answer(&s.slug, "mturk:A1", &t1, "left", "800")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(stored_answers(&t).await, 1);

    let refused = [
        // another participant's trial
        (
            answer(&s.slug, "mturk:A1", &t2, "left", "1"),
            "not part of this HIT",
        ),
        // a choice that is not one of the two
        (
            answer(
                &s.slug,
                "mturk:A1",
                &a1.trials[1].id.to_string(),
                "both",
                "1",
            ),
            "expected \"left\" or \"right\"",
        ),
        // forged HIT key and trial id
        (answer(&s.slug, "mturk:FORGED", &t1, "left", "1"), "no HIT"),
        (
            answer(&s.slug, "mturk:A1", "987654321", "left", "1"),
            "not part of this HIT",
        ),
        (
            answer("no-such-study", "mturk:A1", &t1, "left", "1"),
            "no study",
        ),
        // replayed with a different answer: the first is final
        (
            answer(&s.slug, "mturk:A1", &t1, "right", "1"),
            "first answer is final",
        ),
    ];
    for (req, why) in refused {
        let (st, h, body) = send(&r, req).await;
        assert!(st.is_client_error(), "{st} {body}");
        assert!(body.contains(why), "expected \"{why}\" in {body:?}");
        assert!(h.contains_key(header::CONTENT_SECURITY_POLICY));
    }
    // Not a number where a trial id belongs.
    let (st, _, body) = send(
        &r,
        answer(&s.slug, "mturk:A1", "1; DROP TABLE trials", "left", "1"),
    )
    .await;
    assert!(st.is_client_error(), "{st} {body}");
    // The identical answer again (network retry) is fine and changes nothing.
    let (st, _, _) = send(&r, answer(&s.slug, "mturk:A1", &t1, "left", "800")).await;
    assert_eq!(st, StatusCode::OK);
    // Oversize body.
    let big = "x".repeat(100_000);
    let (st, _, _) = send(
        &r,
        answer(
            &s.slug,
            "mturk:A1",
            &a1.trials[1].id.to_string(),
            "left",
            &big,
        ),
    )
    .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        stored_answers(&t).await,
        1,
        "nothing stored by refused requests"
    );

    // A finished HIT takes no further answers.
    complete(&t, &s.slug, "mturk:A2", false).await;
    let before = stored_answers(&t).await;
    let (_, _, stored) = (
        0,
        0,
        sqlx::query_as::<_, (String,)>("SELECT answer FROM trials WHERE id = $1")
            .bind(a2.trials[0].id)
            .fetch_one(&t.db)
            .await
            .unwrap()
            .0,
    );
    let other = if stored == "left" { "right" } else { "left" };
    let (st, _, body) = send(&r, answer(&s.slug, "mturk:A2", &t2, other, "1")).await;
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
        answer("x", "y", "1", "left", "1"),
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
    auth::create_admin(&t.db, "admin", "correct horse")
        .await
        .unwrap();
    let token = auth::login(&t.db, "admin", "correct horse")
        .await
        .unwrap()
        .unwrap();
    let cookie = format!("{}={token}", auth::SESSION_COOKIE);
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
    assert_eq!(now.state, "live", "nothing changed");
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
    for _ in 0..auth::MAX_FAILED_LOGINS {
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

#[tokio::test]
async fn bundle_upload_that_is_not_a_zip_is_refused() {
    let t = fresh().await;
    let r = http::router(&t);
    auth::create_admin(&t.db, "admin", "correct horse")
        .await
        .unwrap();
    let token = auth::login(&t.db, "admin", "correct horse")
        .await
        .unwrap()
        .unwrap();
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
        .header(header::COOKIE, format!("{}={token}", auth::SESSION_COOKIE))
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
