//! The admin side's HTML: one layout and the small pieces every admin page shares, as `maud` templates.
//!
//! Why maud and not Leptos here: the admin pages are plain server-rendered forms that need no hydration,
//! and the pipeline's report (a CLI that deliberately links neither the web stack nor libtorch) renders
//! with the same crate. maud checks the markup at compile time and escapes every interpolated value, so no
//! page is built from strings and nothing needs a hand-written escape function. The participant pages stay
//! Leptos (they are interactive and hydrated).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::auth::Session;

/// A whole admin page: navigation for a logged-in admin, the title as heading, the body.
pub fn page(title: &str, user: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " - jndlab admin" }
                link rel="stylesheet" href="/pkg/app.css";
            }
            body class="admin" {
                @if let Some(s) = user {
                    nav {
                        a href="/admin" { "Studies" }
                        a href="/admin/tokens" { "API tokens" }
                        span class="user" { (s.username) }
                        form method="post" action="/admin/logout" class="inline" {
                            (csrf(s))
                            button id="logout" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// A one-button POST form (state changes, block/unblock, revoke).
pub fn post_button(
    s: &Session,
    action: &str,
    fields: &[(&str, &str)],
    id: Option<&str>,
    label: &str,
) -> Markup {
    html! {
        form method="post" action=(action) class="inline" {
            (csrf(s))
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            button id=[id] { (label) }
        }
    }
}

/// An SVG drawn by our own plotting code (trusted markup, inserted as it is).
pub fn svg(svg: &str) -> PreEscaped<&str> {
    PreEscaped(svg)
}

/// A number with two decimals.
pub fn f2(v: f64) -> String {
    format!("{v:.2}")
}

/// A square table of `names` x `names` (significance, comparison counts).
pub fn matrix(id: &str, names: &[String], cell: impl Fn(usize, usize) -> Markup) -> Markup {
    html! {
        table id=(id) {
            tr { th {} @for n in names { th { (n) } } }
            @for (i, n) in names.iter().enumerate() {
                tr {
                    th { (n) }
                    @for j in 0..names.len() { td { (cell(i, j)) } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_escaped() {
        let s = Session::for_test("<b>evil</b>", "t\"ok");
        let html = page("a & b <script>", Some(&s), html! { p { "<i>" } }).into_string();
        assert!(html.contains("a &amp; b &lt;script&gt;"));
        assert!(html.contains("&lt;b&gt;evil&lt;/b&gt;"));
        assert!(html.contains("value=\"t&quot;ok\""));
        assert!(html.contains("&lt;i&gt;") && !html.contains("<i>"));
    }
}
