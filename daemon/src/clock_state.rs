//! `$SEMANTICA_HOME/clock.json`: where the engine's timeline stood, so that a restarted
//! daemon goes on from it (see `semantica_adapters::clock`). Saved every few seconds and
//! at a clean stop; a crash loses at most that much of it, and what is lost is made up by
//! the wall-clock time that passed, unless the wall clock was stepped in between.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use semantica_adapters::{ClockState, SystemClock};
use serde_json::json;
use tracing::warn;

/// How often the running daemon saves its clock state.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(5);

fn path(home: &Path) -> PathBuf {
    home.join("clock.json")
}

/// The clock of a daemon starting in `home`: on from the saved state when there is a
/// readable one, from the wall clock otherwise.
pub fn resume(home: &Path) -> SystemClock {
    let saved = std::fs::read(path(home)).ok().and_then(|bytes| {
        let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        Some(ClockState { engine_ms: value["engine_ms"].as_u64()?, wall_ms: value["wall_ms"].as_u64()? })
    });
    SystemClock::resume(semantica_adapters::OsTime, saved)
}

/// Writes the clock's state (to a temp file renamed over the old one).
pub fn save(home: &Path, clock: &SystemClock) {
    let state = clock.state();
    let text = json!({"engine_ms": state.engine_ms, "wall_ms": state.wall_ms}).to_string();
    let temp = home.join("clock.json.tmp");
    if let Err(error) = std::fs::write(&temp, text).and_then(|()| std::fs::rename(&temp, path(home))) {
        warn!(%error, "cannot save the clock state");
    }
}

/// Saves every [`SAVE_INTERVAL`] for as long as the runtime runs.
pub async fn keep_saving(home: PathBuf, clock: Arc<SystemClock>) {
    let mut ticks = tokio::time::interval(SAVE_INTERVAL);
    loop {
        ticks.tick().await;
        save(&home, &clock);
    }
}
