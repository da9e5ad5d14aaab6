//! Who a participant request comes from, and the limits on unauthenticated work.
//!
//! - Starting a HIT is rate-limited per client address (a GCRA token bucket, `governor`), so a flood of
//!   starts with forged ids can neither fill the database nor keep the write lock busy. Behind a reverse
//!   proxy set `--client-ip-header` (e.g. `X-Forwarded-For`, whose last address the proxy appended);
//!   otherwise the socket's peer address is used.
//! - Direct links have no platform id, so each browser gets a random id in an HttpOnly cookie, and that is
//!   the "worker" whose HITs `max_hits_per_worker` counts. This is best effort (README "Threat model"): a
//!   client that drops cookies gets a new id for every HIT and is held back only by the address limit.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::AppState;
use super::fault::TooManyRequests;

/// The per-browser id cookie of direct-link participants.
pub const BROWSER_COOKIE: &str = "jndlab_browser";
/// How long a browser keeps its id.
const BROWSER_COOKIE_DAYS: i64 = 365;

/// Limits a server applies (command-line options of `serve`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// HIT starts allowed per client address and minute, sustained.
    pub starts_per_minute: u32,
    /// Starts allowed in a burst before the sustained rate applies.
    pub start_burst: u32,
    /// Header holding the client address when a proxy sits in front (the last address in it is used).
    pub client_ip_header: Option<HeaderName>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            starts_per_minute: 30,
            start_burst: 10,
            client_ip_header: None,
        }
    }
}

impl Limits {
    /// No practical limit: for a server only this process talks to (`simulate`'s in-process server).
    pub fn unlimited() -> Limits {
        Limits {
            starts_per_minute: u32::MAX / 2,
            start_burst: u32::MAX / 2,
            client_ip_header: None,
        }
    }
}

/// The server's rate limiters.
pub struct Limiter {
    pub limits: Limits,
    starts: DefaultKeyedRateLimiter<IpAddr>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Arc<Limiter> {
        let per_minute = NonZeroU32::new(limits.starts_per_minute.max(1)).expect("at least 1");
        let burst = NonZeroU32::new(limits.start_burst.max(1)).expect("at least 1");
        Arc::new(Limiter {
            starts: governor::RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            limits,
        })
    }

    /// Counts one HIT start from `ip`; an error when over the limit.
    pub fn check_start(&self, ip: Option<IpAddr>) -> Result<(), TooManyRequests> {
        // Requests without a known address (in-process tests) share one bucket.
        let key = ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if self.starts.len() > 100_000 {
            self.starts.retain_recent();
        }
        self.starts.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            TooManyRequests {
                message: "Too many new tasks were started from your network in a short time. Please wait a minute and try again.".into(),
                retry_after_s: wait.as_secs().max(1),
            }
        })
    }
}

/// The client of one participant request.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: Option<IpAddr>,
    /// The browser's id (from its cookie, or new).
    pub browser: String,
    new_browser: bool,
}

/// The address a request came from: the configured proxy header's last entry, else the peer address.
pub fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>, limits: &Limits) -> Option<IpAddr> {
    if let Some(name) = &limits.client_ip_header {
        return headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse().ok())
            .next_back();
    }
    peer.map(|p| p.ip())
}

/// The value of cookie `name` in the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

fn valid_browser_id(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Client {
    /// The client of the current server-function request.
    pub async fn from_request(st: &AppState) -> Client {
        let headers: HeaderMap = leptos_axum::extract().await.unwrap_or_default();
        let peer = leptos_axum::extract::<axum::extract::ConnectInfo<SocketAddr>>()
            .await
            .ok()
            .map(|c| c.0);
        Client::from_parts(&headers, peer, &st.limiter.limits)
    }

    pub fn from_parts(headers: &HeaderMap, peer: Option<SocketAddr>, limits: &Limits) -> Client {
        let ip = client_ip(headers, peer, limits);
        match cookie(headers, BROWSER_COOKIE).filter(|v| valid_browser_id(v)) {
            Some(browser) => Client {
                ip,
                browser,
                new_browser: false,
            },
            None => Client {
                ip,
                browser: super::media::new_token(),
                new_browser: true,
            },
        }
    }

    /// The `Set-Cookie` header for a browser seen for the first time.
    pub fn set_cookie(&self, secure: bool) -> Option<HeaderValue> {
        if !self.new_browser {
            return None;
        }
        let c = cookie::Cookie::build((BROWSER_COOKIE, self.browser.clone()))
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(cookie::SameSite::Lax)
            .max_age(cookie::time::Duration::days(BROWSER_COOKIE_DAYS))
            .build();
        HeaderValue::from_str(&c.to_string()).ok()
    }

    /// Sends the browser cookie with the server function's response, if new.
    pub fn finish(&self) {
        let secure = leptos::prelude::use_context::<AppState>().is_some_and(|s| s.secure_cookies);
        if let (Some(v), Some(opts)) = (
            self.set_cookie(secure),
            leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
        ) {
            opts.append_header(header::SET_COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_header_last_address_wins_and_peer_otherwise() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 10.0.0.9"),
        );
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let behind = Limits {
            client_ip_header: Some(HeaderName::from_static("x-forwarded-for")),
            ..Limits::default()
        };
        assert_eq!(
            client_ip(&h, Some(peer), &behind),
            Some("10.0.0.9".parse().unwrap())
        );
        assert_eq!(
            client_ip(&h, Some(peer), &Limits::default()),
            Some(peer.ip())
        );
    }

    #[test]
    fn the_burst_then_the_sustained_rate() {
        let l = Limiter::new(Limits {
            starts_per_minute: 1,
            start_burst: 3,
            client_ip_header: None,
        });
        let ip = Some("192.0.2.7".parse().unwrap());
        for _ in 0..3 {
            l.check_start(ip).unwrap();
        }
        let e = l.check_start(ip).unwrap_err();
        assert!(e.retry_after_s >= 1);
        // Another address has its own bucket.
        l.check_start(Some("192.0.2.8".parse().unwrap())).unwrap();
    }

    #[test]
    fn a_browser_keeps_its_cookie_id_and_a_forged_one_is_replaced() {
        let mut h = HeaderMap::new();
        let id = "0123456789abcdef0123456789abcdef";
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {BROWSER_COOKIE}={id}")).unwrap(),
        );
        let c = Client::from_parts(&h, None, &Limits::default());
        assert_eq!(c.browser, id);
        assert!(c.set_cookie(false).is_none());
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("jndlab_browser=../../etc"),
        );
        let c = Client::from_parts(&h, None, &Limits::default());
        assert_ne!(c.browser, "../../etc");
        let set = c.set_cookie(true).unwrap();
        let s = set.to_str().unwrap();
        assert!(
            s.contains("HttpOnly") && s.contains("Secure") && s.contains("SameSite=Lax"),
            "{s}"
        );
    }
}
