//! No library: the tests in `tests/tests/` drive the built programs and the app's server across crates
//! (`pipeline_loop.rs`: the whole loop with `jndlab`, `jndlab-train` and `jndlab-app`; `browser.rs`: the
//! participant and admin pages in real Chromium). They share the app's test support
//! (`app/tests/common`).
