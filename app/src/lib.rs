//! jndlab study platform: crowdsourced pairwise-comparison studies.
//!
//! `api` and `ui` compile for both the server (feature `ssr`) and the browser (feature `hydrate`);
//! `server` (database, design and assignment logic, bundle import, admin pages) is server-only.

pub mod api;
pub mod ui;

#[cfg(feature = "ssr")]
pub mod observer;
#[cfg(feature = "ssr")]
pub mod participant;
#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(ui::App);
}
