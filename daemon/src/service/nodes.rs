//! Leases of several daemons on one Postgres database (API.md, "Several daemons on one
//! Postgres"; ARCHITECTURE.md, "The Postgres store").
//!
//! Each daemon holds a row in `nodes` whose `lease_expires_at` it moves to the database's
//! `now() + node_lease_ms` every third of the lease, on a connection of its own. Judged
//! by its own clock, its lease lasts from the moment it *sent* its last successful
//! renewal (the database's `now()` is later than that) minus a margin: past that, it
//! claims nothing, stops its processes, ends its own attempts (`Input::NodeLost` on
//! itself, committed only while the lease has expired) and registers again. Every half
//! lease (jittered) it asks for nodes whose lease expired and sends `Input::NodeLost`
//! for each; the store commits those steps only while that lease is still expired
//! (`Write::NodeLeaseExpired`), so a node that came back in between keeps its jobs.
//! A late report of a lost attempt finds a newer attempt or an end, and changes nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use semantica_adapters::{NodeLease, PgListener, PgOptions, PgStore};
use semantica_core::{Executor, Input, JobState, KillOrder, Reply, Rng, SplitMix64, Store};
use tracing::{debug, info, warn};

use super::Service;

/// Expired nodes one sweep ends at most; the rest wait for the next sweep.
const SWEEP_NODES_MAX: usize = 16;
/// How long a starting daemon waits for its node id's lock (held by a session of a
/// crashed predecessor that the server has not yet seen close).
const NODE_LOCK_WAIT: Duration = Duration::from_secs(3);
/// `NodeLost` rounds one node gets per sweep (each ends up to 1,000 attempts).
const NODE_LOST_ROUNDS_MAX: usize = 100;

/// This daemon's lease: its connection and how long it may still run and claim.
pub(super) struct Lease {
    store: Mutex<PgStore>,
    url: String,
    node: String,
    lease_ms: u64,
    /// Milliseconds since `Service::started` until which the lease holds by this daemon's
    /// clock; 0: lost (claim nothing).
    valid_until_ms: AtomicU64,
}

impl Lease {
    /// Opens the lease connection, takes the node id (refused if another live daemon
    /// holds it) and registers. Blocking: call off the async threads.
    pub(super) fn open(url: &str, node: &str, lease_ms: u64, started: Instant) -> Result<Lease, String> {
        let store = Self::connect(url, node)?;
        let sent_ms = started.elapsed().as_millis() as u64;
        store.register_node(node, lease_ms).map_err(|e| format!("registering node {node:?}: {e}"))?;
        let lease = Lease {
            store: Mutex::new(store),
            url: url.to_owned(),
            node: node.to_owned(),
            lease_ms,
            valid_until_ms: AtomicU64::new(0),
        };
        lease.renewed(sent_ms);
        Ok(lease)
    }

    fn connect(url: &str, node: &str) -> Result<PgStore, String> {
        let store = PgStore::open(url, &PgOptions::default()).map_err(|e| format!("the Postgres store: {e}"))?;
        // A daemon restarted right after a crash may find its old session's lock still
        // held until the server has seen that connection close: it waits a little.
        let deadline = Instant::now() + NODE_LOCK_WAIT;
        loop {
            match store.hold_node_lock(node) {
                Ok(()) => return Ok(store),
                Err(error) if Instant::now() >= deadline => return Err(error),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// A renewal sent at `sent_ms` succeeded.
    fn renewed(&self, sent_ms: u64) {
        // The margin leaves time to stop processes before the others judge the lease gone.
        let margin_ms = self.lease_ms / 5;
        self.valid_until_ms.store(sent_ms + self.lease_ms - margin_ms, Ordering::Release);
    }

    pub(super) fn nodes(&self) -> Result<Vec<NodeLease>, String> {
        self.store.lock().expect("lease lock").nodes().map_err(|e| e.to_string())
    }
}

/// How long the listener waits between two looks at `stopping`, and before it connects
/// again after losing its connection.
const LISTEN_WAIT: Duration = Duration::from_secs(1);

impl Service {
    /// The listener thread: every wake-up of another daemon's commit (`NOTIFY`) pokes the
    /// scheduler, which claims at once; the scheduler's own round (at most a second) is
    /// the fallback, and a new connection pokes it too (wake-ups may have been lost). It
    /// is also the lease's watchdog: its waits are timed on this side, so it stops the
    /// runs once the lease may have run out even while the lease thread hangs on a
    /// database that does not answer. Wake-ups of `own_pid` (this daemon's writer) are left
    /// out: its own commits poke the scheduler already.
    pub(super) fn listen(self: Arc<Service>, url: String, mut listener: PgListener, own_pid: Option<i32>) {
        while !self.stopping.load(Ordering::Acquire) {
            self.stop_runs_past_lease();
            match listener.wait(LISTEN_WAIT, own_pid) {
                Ok(true) => {
                    debug!("woken by another daemon's commit");
                    self.poke.notify_one();
                }
                Ok(false) => {}
                Err(error) => {
                    warn!(%error, "lost the connection that listens for wake-ups; polling until it is back");
                    std::thread::sleep(LISTEN_WAIT);
                    match PgListener::open(&url, &PgOptions::default()) {
                        Ok(new) => {
                            listener = new;
                            self.poke.notify_one();
                        }
                        Err(error) => warn!(%error, "wake-up connection"),
                    }
                }
            }
        }
    }

    /// Stops every run once this daemon's own clock says its lease may have run out: the
    /// others may end those attempts and start them again elsewhere.
    fn stop_runs_past_lease(&self) {
        if self.lease_holds() || self.stopping.load(Ordering::Acquire) {
            return;
        }
        let executor = self.executor.lock().expect("executor lock");
        if executor.running_count() > 0 {
            warn!("the lease may have run out: stopping this daemon's runs");
            executor.stop_all();
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Whether this daemon may claim: always on SQLite; on Postgres while its lease holds.
    pub(super) fn lease_holds(&self) -> bool {
        match &self.lease {
            None => true,
            Some(lease) => self.elapsed_ms() < lease.valid_until_ms.load(Ordering::Acquire),
        }
    }

    /// The lease thread: renew, notice a lost lease, reap attempts ended elsewhere, and
    /// end the attempts of expired nodes. Blocking calls only (its own connection and
    /// the writer's blocking submit), so it runs on a thread of its own.
    pub(super) fn keep_lease(self: Arc<Service>) {
        let Some(lease) = &self.lease else { return };
        let renew_every = Duration::from_millis(lease.lease_ms / 3);
        let mut rng = SplitMix64::new(semantica_adapters::random_seed());
        let sweep_every = |rng: &mut SplitMix64| {
            let half_ms = lease.lease_ms / 2;
            Duration::from_millis(half_ms / 2 + rng.next_u64() % half_ms.max(1))
        };
        let mut next_sweep = Instant::now() + sweep_every(&mut rng);
        while !self.stopping.load(Ordering::Acquire) {
            std::thread::sleep(renew_every);
            let sent_ms = self.elapsed_ms();
            let renewal = lease.store.lock().expect("lease lock").renew_node(&lease.node, lease.lease_ms);
            match renewal {
                // The database found the lease unexpired, so no other daemon can have ended
                // an attempt of this one (`Write::NodeLeaseExpired`), however late this
                // thread ran: claims go on (they paused while its own clock said no).
                Ok(true) => lease.renewed(sent_ms),
                Ok(false) => self.rejoin(lease, "the lease expired"),
                Err(error) => {
                    warn!(%error, "cannot renew this daemon's lease; reconnecting");
                    match Lease::connect(&lease.url, &lease.node) {
                        Ok(store) => *lease.store.lock().expect("lease lock") = store,
                        Err(error) => warn!(%error, "lease connection"),
                    }
                    if !self.lease_holds() {
                        self.rejoin(lease, "the lease could not be renewed in time");
                    }
                }
            }
            if self.lease_holds() {
                self.reap_ended_elsewhere(lease);
                if Instant::now() >= next_sweep {
                    self.sweep_lost_nodes(lease);
                    next_sweep = Instant::now() + sweep_every(&mut rng);
                }
            }
        }
    }

    /// The lease is lost: claim nothing, stop every process, end this node's attempts
    /// that are left, and register again.
    fn rejoin(&self, lease: &Lease, why: &str) {
        lease.valid_until_ms.store(0, Ordering::Release);
        warn!(node = %lease.node, why, "lease lost: stopping this daemon's jobs and claiming nothing until it rejoins");
        self.executor.lock().expect("executor lock").stop_all();
        let deadline = Instant::now() + self.file_config().kill_grace() + Duration::from_secs(1);
        while self.executor.lock().expect("executor lock").running_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let retry = Duration::from_millis(lease.lease_ms / 3);
        while !self.stopping.load(Ordering::Acquire) {
            // Its processes are stopped: what is still RUNNING of this node is over. The
            // store refuses the step while the lease is live (never expired after all):
            // then renewing is enough, and the stopped processes' reports end them.
            let sent_ms = self.elapsed_ms();
            if let Ok(true) = lease.store.lock().expect("lease lock").renew_node(&lease.node, lease.lease_ms) {
                lease.renewed(sent_ms);
                break;
            }
            if !self.end_node_attempts(&lease.node) {
                std::thread::sleep(retry);
                continue;
            }
            let sent_ms = self.elapsed_ms();
            match lease.store.lock().expect("lease lock").register_node(&lease.node, lease.lease_ms) {
                Ok(()) => {
                    lease.renewed(sent_ms);
                    info!(node = %lease.node, "rejoined with a new lease");
                    break;
                }
                Err(error) => {
                    warn!(%error, "cannot register again; retrying");
                    std::thread::sleep(retry);
                }
            }
        }
        self.poke.notify_one();
    }

    /// `NodeLost` for `node` until none of its attempts is left. `false`: a step failed
    /// (the store refused it, or could not be reached).
    fn end_node_attempts(&self, node: &str) -> bool {
        for _ in 0..NODE_LOST_ROUNDS_MAX {
            match self.writer.submit(Input::NodeLost { node: node.to_owned() }) {
                Ok(step) => {
                    if let Reply::NodeLost { failed_attempts, more } = step.reply {
                        if failed_attempts > 0 {
                            info!(node, failed_attempts, "attempts of a lost node ended (node_lost)");
                        }
                        self.apply(&step);
                        if !more {
                            return true;
                        }
                    }
                }
                Err(error) => {
                    info!(node, %error, "attempts of a lost node not ended");
                    return false;
                }
            }
        }
        false
    }

    /// Ends the attempts of nodes whose lease expired, then forgets those nodes.
    fn sweep_lost_nodes(&self, lease: &Lease) {
        let expired = lease.store.lock().expect("lease lock").expired_nodes(&lease.node, SWEEP_NODES_MAX);
        let expired = match expired {
            Ok(expired) => expired,
            Err(error) => return warn!(%error, "cannot list expired nodes"),
        };
        for node in expired {
            if self.end_node_attempts(&node) {
                if let Ok(true) = lease.store.lock().expect("lease lock").forget_node(&node) {
                    info!(node, "forgot an expired node");
                }
            }
        }
    }

    /// Stops local runs whose attempt another daemon ended (a cancel, timeout or
    /// deadline decided there): the engine that decided it could not reach this
    /// machine's processes, and the subject stays taken (`reap_pending`) until they end.
    fn reap_ended_elsewhere(&self, lease: &Lease) {
        // Local runs first: each was spawned after its claim committed, so the read
        // below sees it RUNNING unless it really ended.
        let local = self.executor.lock().expect("executor lock").running_attempts();
        if local.is_empty() {
            return;
        }
        let held = match lease.store.lock().expect("lease lock").jobs_of_node(&lease.node, usize::MAX) {
            Ok(held) => held,
            Err(error) => return warn!(%error, "cannot read this node's jobs"),
        };
        for (job_id, attempt) in local {
            let current =
                held.iter().any(|job| job.id == job_id && job.attempts == attempt && job.state == JobState::Running);
            if !current {
                info!(%job_id, attempt, "stopping a run whose attempt ended on another daemon");
                let order = KillOrder { job_id, attempt, pid: None, pid_started_at: None };
                self.executor.lock().expect("executor lock").kill(&order);
            }
        }
    }
}
