//! The participant pages (Leptos, server-rendered and hydrated): consent -> instructions -> trials -> done.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::hooks::{use_params_map, use_query_map};
use leptos_router::path;

use crate::api::{
    Completion, Entry, EntryParams, HitView, Side, TrialView, enter_study, start_hit, submit_answer,
};

/// The HTML document around the app (server side).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <HydrationScripts options/>
                <MetaTags/>
                <link rel="stylesheet" href="/pkg/app.css"/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Device pixels per CSS pixel: 1 on the server, the browser's on hydration and after every resize
    // (a zoom or a move to another screen changes it), so images stay one image pixel per device pixel.
    let dpr = RwSignal::new(1.0f64);
    provide_context(PixelRatio(dpr));
    Effect::new(move |_| {
        let update = move || {
            let r = client::device_pixel_ratio();
            dpr.set(r);
            client::mark_body("data-dpr", &r.to_string());
        };
        update();
        let handle = window_event_listener(leptos::ev::resize, move |_| update());
        on_cleanup(move || handle.remove());
    });
    view! {
        <Title text="Image comparison study"/>
        <Router>
            <main>
                <Routes fallback=|| view! { <p class="message">"Page not found."</p> }>
                    <Route path=path!("/") view=Home/>
                    <Route path=path!("/s/:slug") view=StudyPage/>
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn Home() -> impl IntoView {
    view! {
        <h1>"jndlab study platform"</h1>
        <p>"Participants arrive through a study link. Experimenters: " <a href="/admin">"admin"</a> "."</p>
    }
}

/// The page's devicePixelRatio, as a signal (see [`App`]).
#[derive(Clone, Copy)]
struct PixelRatio(RwSignal<f64>);

/// Browser-only helpers; no-ops on the server.
mod client {
    #[cfg(feature = "hydrate")]
    use wasm_bindgen::JsCast;

    pub fn now_ms() -> f64 {
        #[cfg(feature = "hydrate")]
        {
            web_sys::window()
                .and_then(|w| w.performance())
                .map(|p| p.now())
                .unwrap_or(0.0)
        }
        #[cfg(not(feature = "hydrate"))]
        0.0
    }

    /// Puts the direct-link participant id into the URL so that a reload resumes the same HIT.
    pub fn remember_pid(_pid: &str) {
        #[cfg(feature = "hydrate")]
        if let Some(w) = web_sys::window() {
            let path = w.location().pathname().unwrap_or_default();
            if let Ok(h) = w.history() {
                let _ = h.replace_state_with_url(
                    &wasm_bindgen::JsValue::NULL,
                    "",
                    Some(&format!("{path}?pid={_pid}")),
                );
            }
        }
    }

    pub fn submit_form(_id: &str) {
        #[cfg(feature = "hydrate")]
        if let Some(f) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id(_id))
            .and_then(|e| e.dyn_into::<web_sys::HtmlFormElement>().ok())
        {
            let _ = f.submit();
        }
    }

    pub fn redirect(_url: &str) {
        #[cfg(feature = "hydrate")]
        if let Some(w) = web_sys::window() {
            let _ = w.location().set_href(_url);
        }
    }

    pub fn mark_body(_name: &str, _value: &str) {
        #[cfg(feature = "hydrate")]
        if let Some(b) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.body())
        {
            let _ = b.set_attribute(_name, _value);
        }
    }

    /// Device pixels per CSS pixel (1 on the server, or when the browser does not say).
    pub fn device_pixel_ratio() -> f64 {
        #[cfg(feature = "hydrate")]
        if let Some(w) = web_sys::window() {
            let r = w.device_pixel_ratio();
            if r.is_finite() && r > 0.0 {
                return r;
            }
        }
        1.0
    }

    /// A warning when the window cannot hold the trial at native pixel size (sizes in device pixels:
    /// the images are sized in device pixels whatever the zoom or display scaling).
    pub fn display_warning(_needed_width: u32, _needed_height: u32) -> Option<String> {
        #[cfg(feature = "hydrate")]
        if let Some(w) = web_sys::window() {
            let dpr = device_pixel_ratio();
            let css = |v: Result<wasm_bindgen::JsValue, wasm_bindgen::JsValue>| {
                v.ok().and_then(|v| v.as_f64()).unwrap_or(0.0)
            };
            let (width, height) = (css(w.inner_width()) * dpr, css(w.inner_height()) * dpr);
            if width < _needed_width as f64 || height < _needed_height as f64 {
                return Some(
                    "Your browser window is too small for the images at their true size; please enlarge it (or zoom out) until this message disappears."
                        .to_string(),
                );
            }
        }
        None
    }
}

fn params_from_query(q: &leptos_router::params::ParamsMap) -> EntryParams {
    EntryParams {
        assignment_id: q.get("assignmentId"),
        hit_id: q.get("hitId"),
        worker_id: q.get("workerId"),
        turk_submit_to: q.get("turkSubmitTo"),
        prolific_pid: q.get("PROLIFIC_PID"),
        prolific_study_id: q.get("STUDY_ID"),
        prolific_session_id: q.get("SESSION_ID"),
        pid: q.get("pid"),
    }
}

#[component]
fn StudyPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let entry_params = move || params_from_query(&query.read());
    let entry = Resource::new(move || (slug(), entry_params()), |(s, p)| enter_study(s, p));
    view! {
        <Suspense fallback=|| view! { <p class="message">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match entry.await {
                    Ok(e) => view! { <Flow entry=e params=entry_params_untracked(query)/> }.into_any(),
                    Err(e) => view! { <p class="message error" id="error">{server_message(&e)}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn entry_params_untracked(query: Memo<leptos_router::params::ParamsMap>) -> EntryParams {
    params_from_query(&query.read_untracked())
}

fn server_message(e: &crate::api::ParticipantError) -> String {
    e.message().to_string()
}

#[derive(Clone, Debug, PartialEq)]
enum Stage {
    Consent,
    Instructions,
    Trials,
    Done,
    Preview,
    Refused(String),
}

#[component]
fn Flow(entry: Entry, params: EntryParams) -> impl IntoView {
    let initial = match (&entry.hit, entry.preview, &entry.message) {
        (Some(h), _, _) if h.completion.is_some() => Stage::Done,
        (Some(_), _, _) => Stage::Trials,
        (None, true, _) => Stage::Preview,
        (None, false, Some(m)) => Stage::Refused(m.clone()),
        (None, false, None) => Stage::Consent,
    };
    let stage = RwSignal::new(initial);
    let hit = RwSignal::new(entry.hit.clone());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let slug = StoredValue::new(entry.slug.clone());
    let params = StoredValue::new(params);

    Effect::new(move |_| {
        client::mark_body(
            "data-stage",
            match stage.get() {
                Stage::Consent => "consent",
                Stage::Instructions => "instructions",
                Stage::Trials => "trials",
                Stage::Done => "done",
                Stage::Preview => "preview",
                Stage::Refused(_) => "refused",
            },
        );
        client::mark_body("data-hydrated", "1");
    });

    let start = move |_| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        spawn_local(async move {
            match start_hit(slug.get_value(), params.get_value()).await {
                Ok(h) => {
                    if let Some(pid) = &h.pid {
                        client::remember_pid(pid);
                    }
                    let done = h.completion.is_some();
                    hit.set(Some(h));
                    stage.set(if done { Stage::Done } else { Stage::Trials });
                }
                Err(e) => stage.set(Stage::Refused(server_message(&e))),
            }
            busy.set(false);
        });
    };

    let question = entry.question.clone();
    let synthetic = entry.synthetic;
    let example = entry.example.clone();
    let title = if entry.study_name.is_empty() {
        "Image comparison study".to_string()
    } else {
        entry.study_name.clone()
    };
    view! {
        <div class="study" data-study=entry.slug.clone()>
            <h1>{title}</h1>
            {synthetic.then(|| view! { <p class="synthetic">"Demo study with synthetic images."</p> })}
            {move || match stage.get() {
                Stage::Consent => view! {
                    <section id="consent">
                        <h2>"Consent"</h2>
                        <p>"This is a research study on how people judge image quality. You will see a reference image and two other versions of it, and pick the one closer to the reference. It takes a few minutes."</p>
                        <p>"We store your answers, your response times and your platform id (to pay you and to avoid showing you the same comparison twice). Nothing else is collected. You may stop at any time."</p>
                        <button id="consent-agree" on:click=move |_| stage.set(Stage::Instructions)>"I agree, continue"</button>
                    </section>
                }.into_any(),
                Stage::Instructions => view! {
                    <Instructions question=question.clone() example=example.clone()/>
                    <button id="start" disabled=move || busy.get() on:click=start>"Start"</button>
                }.into_any(),
                Stage::Preview => view! {
                    <p class="notice" id="preview-notice">"Preview: accept the HIT to take part. Nothing is recorded in preview."</p>
                    <Instructions question=question.clone() example=example.clone()/>
                }.into_any(),
                Stage::Refused(m) => view! { <p class="message" id="refused">{m}</p> }.into_any(),
                Stage::Trials => view! { <Trials hit=hit stage=stage error=error busy=busy question=question.clone()/> }.into_any(),
                Stage::Done => view! { <Done hit=hit/> }.into_any(),
            }}
            {move || error.get().map(|e| view! { <p class="message error" id="error">{e}</p> })}
        </div>
    }
}

#[component]
fn Instructions(question: String, example: Option<TrialView>) -> impl IntoView {
    view! {
        <section id="instructions">
            <h2>"Instructions"</h2>
            <p>"In each trial you see a " <b>"reference"</b> " image in the middle and two versions of it, left and right."</p>
            <p class="question">{question}</p>
            <p>"Click the better image, or press the " <kbd>"←"</kbd> " or " <kbd>"→"</kbd> " arrow key. Look closely: the differences can be small. Some trials have an obvious answer; they check that you are paying attention."</p>
            <p>"The images are shown pixel for pixel on your screen, whatever your zoom: please keep the window large enough to show all three side by side."</p>
            {example.map(|t| view! {
                <h3>"Example"</h3>
                <div class="trial example">
                    <Img img=t.left.clone() label="Left"/>
                    <Img img=t.reference.clone() label="Reference"/>
                    <Img img=t.right.clone() label="Right"/>
                </div>
            })}
        </section>
    }
}

#[component]
fn Img(img: crate::api::ImgView, label: &'static str) -> impl IntoView {
    // CSS size = natural size / devicePixelRatio: one image pixel on one device pixel.
    let dpr = use_context::<PixelRatio>().map(|p| p.0);
    let (w, h) = (f64::from(img.width), f64::from(img.height));
    let style = move || {
        let r = dpr.map_or(1.0, |d| d.get());
        format!("width:{}px;height:{}px", w / r, h / r)
    };
    view! {
        <figure class="candidate">
            <figcaption>{label}</figcaption>
            <img src=img.url width=img.width height=img.height style=style alt=label draggable="false"/>
        </figure>
    }
}

/// The trial to answer now: the first one not answered yet.
fn current(h: &Option<HitView>) -> Option<TrialView> {
    let h = h.as_ref()?;
    h.trials.get(h.answered as usize).cloned()
}

#[component]
fn Trials(
    hit: RwSignal<Option<HitView>>,
    stage: RwSignal<Stage>,
    error: RwSignal<Option<String>>,
    busy: RwSignal<bool>,
    question: String,
) -> impl IntoView {
    let t0 = StoredValue::new(0.0f64);
    let warning = RwSignal::new(None::<String>);
    let now = Memo::new(move |_| hit.with(current));
    let total = move || hit.with(|h| h.as_ref().map(|h| h.trials.len()).unwrap_or(0));
    let answered = move || hit.with(|h| h.as_ref().map(|h| h.answered as usize).unwrap_or(0));

    // Start the response-time clock whenever a new trial is shown.
    Effect::new(move |_| {
        if let Some(t) = now.get() {
            t0.set_value(client::now_ms());
            warning.set(client::display_warning(
                3 * t.reference.width + 80,
                t.reference.height + 160,
            ));
            client::mark_body("data-trial", &t.position.to_string());
        }
    });

    let answer = move |side: Side| {
        if busy.get_untracked() {
            return;
        }
        let Some(h) = hit.get_untracked() else { return };
        let Some(t) = current(&Some(h.clone())) else {
            return;
        };
        let rt = (client::now_ms() - t0.get_value()).round() as i64;
        busy.set(true);
        spawn_local(async move {
            match submit_answer(h.key.clone(), t.position, side, rt).await {
                Ok(ack) => {
                    error.set(None);
                    let done = ack.completion.is_some();
                    hit.update(|h| {
                        if let Some(h) = h {
                            h.answered = ack.answered;
                            h.completion = ack.completion.clone();
                        }
                    });
                    if done {
                        stage.set(Stage::Done);
                    }
                }
                Err(e) => error.set(Some(format!(
                    "Your answer could not be saved ({}). Please try again.",
                    server_message(&e)
                ))),
            }
            busy.set(false);
        });
    };

    Effect::new(move |_| {
        let handle =
            window_event_listener(leptos::ev::keydown, move |ev| match ev.key().as_str() {
                "ArrowLeft" => {
                    ev.prevent_default();
                    answer(Side::Left)
                }
                "ArrowRight" => {
                    ev.prevent_default();
                    answer(Side::Right)
                }
                _ => {}
            });
        on_cleanup(move || handle.remove());
    });

    let next = move || {
        hit.with(|h| {
            let h = h.as_ref()?;
            h.trials.get(h.answered as usize + 1).cloned()
        })
    };

    view! {
        <section id="trials">
            <div class="progress">
                <progress id="progress" max=total value=answered></progress>
                <span>{move || format!("Trial {} of {}", (answered() + 1).min(total()), total())}</span>
            </div>
            <p class="question">{question}</p>
            {move || warning.get().map(|w| view! { <p class="notice" id="display-warning">{w}</p> })}
            {move || now.get().map(|t| {
                let tid = t.position.to_string();
                view! {
                    <div class="trial" id="trial" data-trial=tid>
                        <button class="pick" id="pick-left" on:click=move |_| answer(Side::Left)>
                            <Img img=t.left.clone() label="Left (←)"/>
                        </button>
                        <Img img=t.reference.clone() label="Reference"/>
                        <button class="pick" id="pick-right" on:click=move |_| answer(Side::Right)>
                            <Img img=t.right.clone() label="Right (→)"/>
                        </button>
                    </div>
                }
            })}
            <div class="preload" aria-hidden="true">
                {move || next().map(|t| view! {
                    <img src=t.reference.url alt=""/>
                    <img src=t.left.url alt=""/>
                    <img src=t.right.url alt=""/>
                })}
            </div>
        </section>
    }
}

#[component]
fn Done(hit: RwSignal<Option<HitView>>) -> impl IntoView {
    let completion = hit.get_untracked().and_then(|h| h.completion);
    let auto = completion.clone();
    Effect::new(move |_| match &auto {
        Some(Completion::Mturk { .. }) => client::submit_form("mturk-submit"),
        Some(Completion::Prolific { url, .. }) => client::redirect(url),
        _ => {}
    });
    view! {
        <section id="done">
            <h2>"Thank you!"</h2>
            {match completion {
                Some(Completion::Mturk { action, assignment_id, code }) => view! {
                    <p>"Submitting your HIT to Amazon Mechanical Turk…"</p>
                    <form id="mturk-submit" method="post" action=action>
                        <input type="hidden" name="assignmentId" value=assignment_id/>
                        <input type="hidden" name="completionCode" value=code/>
                        <button type="submit">"Submit HIT"</button>
                    </form>
                }.into_any(),
                Some(Completion::Prolific { url, code }) => view! {
                    <p>"Returning you to Prolific… If nothing happens, " <a id="prolific-link" href=url>"click here"</a>
                    " (completion code " <code>{code}</code> ")."</p>
                }.into_any(),
                Some(Completion::Direct { code }) => view! {
                    <p>"Your completion code is " <code id="completion-code">{code}</code> "."</p>
                }.into_any(),
                None => view! { <p>"Your answers are saved."</p> }.into_any(),
            }}
        </section>
    }
}
