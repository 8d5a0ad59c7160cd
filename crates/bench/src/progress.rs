//! The progress bar `udpchat bench` shows on standard error while it runs
//! (hidden when standard error is not a terminal, so scripts and --json
//! get clean output). A ticker task redraws it from the live counters in
//! [`super::Progress`] ten times a second; each phase gets its own ticker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use crate::ctx::{Ctx, Progress};

const TICK: Duration = Duration::from_millis(100);

pub struct Bar {
    bar: ProgressBar,
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants; a bad one falls back to the default look.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Bar {
    pub fn new() -> Self {
        Self { bar: ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()) }
    }

    fn phase(&self, name: &'static str, len: Option<u64>, update: impl Fn(&ProgressBar) + Send + 'static) -> Ticker {
        let bar = self.bar.clone();
        bar.set_style(if len.is_some() {
            style("{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
        } else {
            style("{prefix:>10} [{elapsed_precise}] {spinner} {msg}")
        });
        bar.set_prefix(name);
        bar.set_message("");
        bar.set_length(len.unwrap_or(0));
        bar.reset();
        Ticker(tokio::spawn(async move {
            loop {
                update(&bar);
                bar.tick();
                tokio::time::sleep(TICK).await;
            }
        }))
    }

    pub fn connecting(&self, ctx: Arc<Ctx>, clients: u64) -> Ticker {
        self.phase("connecting", Some(clients), move |bar| {
            let p = &ctx.progress;
            bar.set_position(Progress::get(&p.connected) + Progress::get(&p.failed));
            bar.set_message(format!("{} failed", Progress::get(&p.failed)));
        })
    }

    pub fn sending(&self, ctx: Arc<Ctx>, lines: u64) -> Ticker {
        let start = Instant::now();
        self.phase("sending", Some(lines), move |bar| {
            let p = &ctx.progress;
            let delivered = Progress::get(&p.delivered);
            let rate = delivered as f64 / start.elapsed().as_secs_f64().max(0.001);
            bar.set_position(Progress::get(&p.sent));
            bar.set_message(format!(
                "accepted {} · delivered {delivered}/{} · {rate:.0}/s",
                Progress::get(&p.accepted),
                Progress::get(&p.expected)
            ));
        })
    }

    pub fn draining(&self, ctx: Arc<Ctx>) -> Ticker {
        self.phase("draining", None, move |bar| {
            let p = &ctx.progress;
            bar.set_message(format!(
                "resolved {}/{} lines · delivered {}/{}",
                Progress::get(&p.resolved),
                Progress::get(&p.sent),
                Progress::get(&p.delivered),
                Progress::get(&p.expected)
            ));
        })
    }

    pub fn holding(&self, hold: Duration) -> Ticker {
        let start = Instant::now();
        self.phase("idle", None, move |bar| {
            let left = hold.saturating_sub(start.elapsed());
            bar.set_message(format!("holding the sessions, {:.0} s left", left.as_secs_f64()));
        })
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A phase's redraw task; stopped when the phase ends.
pub struct Ticker(JoinHandle<()>);

impl Ticker {
    pub fn abort(self) {
        self.0.abort();
    }
}
