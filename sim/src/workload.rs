//! Simulated clients: what they send and what they expect back.
//!
//! Enqueues come in bursts of generations for a few hot subjects, with explicit, absent,
//! stale and duplicate generations, every option of `dev.enqueue.v1`, and requests that
//! are invalid on purpose and must be refused. Clients also cancel (by id, tag and group),
//! emit events, claim, purge, and read through the store's query port; they pause and
//! resume queues, retry ended jobs (by id, by an id no job has, by filter), and set and
//! delete recurring jobs (valid and invalid cron expressions and time zones). The mix is
//! drawn per seed (swarm testing): some seeds never cancel, some cancel a lot.

use std::collections::{BTreeMap, BTreeSet};

use semantica_core::{
    BackoffRequest, CancelRequest, Conditions, EnqueueRequest, ExecRequest, Input, JobId, JobQuery, JobState,
    RecurringRequest, RetryRequest, Rng, ScheduleRequest, SplitMix64,
};

pub const JOB_TYPES: [&str; 4] = ["noop", "sleep", "echo", "fail"];
pub const QUEUES: [&str; 3] = ["default", "build", "io"];
const HOT_SUBJECTS: u64 = 4;
const COLD_SUBJECTS: u64 = 40;
const EVENTS: u64 = 3;
const TAGS: u64 = 4;
const GROUPS: u64 = 3;
/// Job ids a client remembers to cancel, get or use as a parent.
const KNOWN_IDS_MAX: usize = 256;
/// Largest batch a client sends.
const BATCH_JOBS_MAX: u64 = 8;
/// Names of the recurring jobs clients set and delete: few, so that they replace each other.
const RECURRING_NAMES: u64 = 4;
/// Largest `limit` of a retry by filter (a retry of every FAILED job, again and again,
/// would otherwise grow the run without bound).
const RETRY_LIMIT_MAX: u64 = 8;
/// Slots every minute, every other minute, every hour, and at half past (which is the full
/// hour in `Asia/Kolkata`).
const CRONS: [&str; 5] = ["* * * * *", "*/2 * * * *", "0 * * * *", "30 * * * *", "*/5 * * * *"];
/// `None` is UTC by default.
const TIME_ZONES: [Option<&str>; 5] =
    [None, Some("UTC"), Some("Europe/Berlin"), Some("Asia/Kolkata"), Some("America/New_York")];

/// What a client expects of the engine's answer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Expect {
    /// Must be refused with a validation error and write nothing.
    Invalid(&'static str),
    /// Names a parent that does not exist: refused, unless the request at `index` is a
    /// duplicate of a live job, which is returned as such (guarantee 4 is checked first).
    UnknownParent { index: usize },
    /// Must not be refused with a validation error (parent_job_id aside: a purged parent
    /// is legitimately unknown).
    Valid,
    /// Not found, conflict or success are all fine answers.
    Any,
    /// Names a job that does not exist: refused as not found.
    NotFound,
}

#[derive(Clone, PartialEq, Debug)]
pub enum ClientOp {
    Send { input: Input, expect: Expect },
    Query(JobQuery),
    Get(JobId),
}

/// How often each kind of operation is drawn, drawn itself from the seed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Mix {
    pub enqueue: u64,
    pub batch: u64,
    pub invalid: u64,
    pub cancel: u64,
    pub event: u64,
    pub claim: u64,
    pub purge: u64,
    pub read: u64,
    /// Pause or resume a queue.
    pub pause: u64,
    pub retry: u64,
    /// Set or delete a recurring job.
    pub recurring: u64,
    /// Share of enqueues that go to the few hot subjects, in percent.
    pub hot_percent: u64,
}

impl Mix {
    pub fn draw(rng: &mut SplitMix64) -> Mix {
        let mut weight = |max: u64| if rng.chance(1, 5) { 0 } else { 1 + rng.below(max) };
        Mix {
            enqueue: 10 + weight(40),
            batch: weight(6),
            invalid: weight(6),
            cancel: weight(8),
            event: weight(6),
            claim: weight(6),
            purge: weight(2),
            read: weight(8),
            pause: weight(3),
            retry: weight(4),
            recurring: weight(3),
            hot_percent: 20 + rng.below(76),
        }
    }

    fn total(&self) -> u64 {
        self.enqueue
            + self.batch
            + self.invalid
            + self.cancel
            + self.event
            + self.claim
            + self.purge
            + self.read
            + self.pause
            + self.retry
            + self.recurring
    }
}

#[derive(Clone, Debug)]
pub struct Workload {
    rng: SplitMix64,
    pub mix: Mix,
    /// The highest generation a client has sent for each subject.
    generations: BTreeMap<String, i64>,
    known_ids: Vec<JobId>,
    events_used: BTreeSet<String>,
}

impl Workload {
    pub fn new(seed: u64) -> Workload {
        let mut rng = SplitMix64::new(seed);
        let mix = Mix::draw(&mut rng);
        Workload { rng, mix, generations: BTreeMap::new(), known_ids: Vec::new(), events_used: BTreeSet::new() }
    }

    /// A job id the engine acknowledged: a later operation may name it.
    pub fn learn(&mut self, id: JobId) {
        if self.known_ids.len() == KNOWN_IDS_MAX {
            let evict = self.rng.below(KNOWN_IDS_MAX as u64) as usize;
            self.known_ids.swap_remove(evict);
        }
        self.known_ids.push(id);
    }

    /// The engine answered an enqueue for `subject_key` with `generation`: later explicit
    /// generations are drawn around it, so that duplicates and stale ones hit the edge.
    pub fn learn_generation(&mut self, subject_key: &str, generation: u64) {
        let generation = i64::try_from(generation).unwrap_or(i64::MAX);
        let entry = self.generations.entry(subject_key.to_owned()).or_insert(generation);
        *entry = (*entry).max(generation);
    }

    /// Every subject a client has enqueued for so far.
    pub fn subjects(&self) -> impl Iterator<Item = &String> {
        self.generations.keys()
    }

    /// Every event name a job may wait for so far.
    pub fn events_used(&self) -> impl Iterator<Item = &String> {
        self.events_used.iter()
    }

    /// The next client operation at `now_ms` (engine time), when the wall clock (which a
    /// client's absolute times are on) reads `wall_ms`.
    pub fn next_op(&mut self, now_ms: u64, wall_ms: u64) -> ClientOp {
        let mix = self.mix;
        let mut roll = self.rng.below(mix.total());
        let mut pick = |weight: u64| {
            let hit = roll < weight;
            roll = roll.saturating_sub(weight);
            hit
        };
        if pick(mix.enqueue) {
            let request = self.valid_request(wall_ms);
            return ClientOp::Send { input: Input::Enqueue(Box::new(request)), expect: Expect::Valid };
        }
        if pick(mix.batch) {
            return self.batch(wall_ms);
        }
        if pick(mix.invalid) {
            let mut request = self.valid_request(wall_ms);
            let expect = self.break_request(&mut request, 0);
            return ClientOp::Send { input: Input::Enqueue(Box::new(request)), expect };
        }
        if pick(mix.cancel) {
            return self.cancel();
        }
        if pick(mix.event) {
            let name = format!("ev-{}", self.rng.below(EVENTS));
            return ClientOp::Send { input: Input::Event { name }, expect: Expect::Any };
        }
        if pick(mix.claim) {
            let queue = self.rng.chance(1, 2).then(|| self.queue());
            let input = if self.rng.chance(1, 2) {
                Input::Claim { queue }
            } else {
                Input::ClaimBatch { queue, max: 1 + self.rng.below(8) as usize }
            };
            return ClientOp::Send { input, expect: Expect::Any };
        }
        if pick(mix.purge) {
            let input = Input::Purge {
                finished_before_ms: now_ms.saturating_sub(self.rng.below(120_000)),
                limit: 1 + self.rng.below(50) as usize,
            };
            return ClientOp::Send { input, expect: Expect::Any };
        }
        if pick(mix.pause) {
            return self.pause();
        }
        if pick(mix.retry) {
            return self.retry();
        }
        if pick(mix.recurring) {
            return self.recurring(wall_ms);
        }
        self.read()
    }

    fn pause(&mut self) -> ClientOp {
        let paused = self.rng.chance(1, 2);
        if self.rng.chance(1, 10) {
            let queue = if self.rng.chance(1, 2) { "Bad Queue" } else { "" }.to_owned();
            return ClientOp::Send {
                input: Input::PauseQueue { queue, paused },
                expect: Expect::Invalid("queue name"),
            };
        }
        ClientOp::Send { input: Input::PauseQueue { queue: self.queue(), paused }, expect: Expect::Any }
    }

    /// By a known id (any answer: it may be running, done or purged), by an id no job has,
    /// or by a filter of a state, queue and tag with a small limit.
    fn retry(&mut self) -> ClientOp {
        let send =
            |request: RetryRequest, expect: Expect| ClientOp::Send { input: Input::Retry(Box::new(request)), expect };
        match self.rng.below(10) {
            0..=3 => match self.known_id() {
                Some(id) => send(RetryRequest { job_id: Some(id), ..RetryRequest::default() }, Expect::Any),
                None => {
                    send(RetryRequest { job_id: Some(self.stranger_id()), ..RetryRequest::default() }, Expect::NotFound)
                }
            },
            4 => send(RetryRequest { job_id: Some(self.stranger_id()), ..RetryRequest::default() }, Expect::NotFound),
            5..=8 => {
                let mut filter = JobQuery::default();
                if self.rng.chance(4, 5) {
                    // Mostly a retryable end; sometimes one that matches nothing retryable.
                    const STATES: [JobState; 5] = [
                        JobState::Failed,
                        JobState::Cancelled,
                        JobState::SkippedTtl,
                        JobState::SkippedDeadline,
                        JobState::Done,
                    ];
                    filter.states.push(STATES[self.rng.below(STATES.len() as u64) as usize]);
                }
                if self.rng.chance(1, 3) {
                    filter.queues.push(self.queue());
                }
                if self.rng.chance(1, 3) {
                    filter.tag = Some(self.tag());
                }
                let limit = Some(1 + self.rng.below(RETRY_LIMIT_MAX) as i64);
                send(RetryRequest { job_id: None, filter: Some(filter), limit }, Expect::Valid)
            }
            _ => {
                let (request, what) = match self.rng.below(3) {
                    0 => (RetryRequest::default(), "neither job_id nor filter"),
                    1 => (
                        RetryRequest {
                            job_id: Some(self.stranger_id()),
                            filter: Some(JobQuery::default()),
                            limit: None,
                        },
                        "job_id and filter",
                    ),
                    _ => (
                        RetryRequest {
                            job_id: None,
                            filter: Some(JobQuery::default()),
                            limit: Some(if self.rng.chance(1, 2) { 0 } else { 1_001 }),
                        },
                        "limit out of range",
                    ),
                };
                send(request, Expect::Invalid(what))
            }
        }
    }

    /// Set (or replace) a recurring job, now and then an invalid one, or delete one.
    fn recurring(&mut self, wall_ms: u64) -> ClientOp {
        let name = format!("rec-{}", self.rng.below(RECURRING_NAMES));
        if self.rng.chance(1, 4) {
            // An unknown name is a fine answer too (deleted: false).
            let name = if self.rng.chance(1, 8) { "rec-none".to_owned() } else { name };
            return ClientOp::Send { input: Input::DeleteRecurring { name }, expect: Expect::Any };
        }
        let mut job = self.valid_request(wall_ms);
        job.generation = None;
        job.schedule = None;
        if self.rng.chance(3, 4) {
            // Mostly a subject of its own; otherwise it shares one with the clients' enqueues.
            job.subject_key = Some(format!("cron-{name}"));
        }
        let mut request = RecurringRequest {
            name,
            cron: CRONS[self.rng.below(CRONS.len() as u64) as usize].to_owned(),
            timezone: TIME_ZONES[self.rng.below(TIME_ZONES.len() as u64) as usize].map(str::to_owned),
            job,
        };
        let expect = if self.rng.chance(1, 8) { self.break_recurring(&mut request) } else { Expect::Valid };
        ClientOp::Send { input: Input::SetRecurring(Box::new(request)), expect }
    }

    /// Makes a valid recurring request invalid in one way.
    fn break_recurring(&mut self, request: &mut RecurringRequest) -> Expect {
        let what = match self.rng.below(8) {
            0 => {
                request.cron = "* * * *".to_owned();
                "cron with four fields"
            }
            1 => {
                request.cron = "61 * * * *".to_owned();
                "cron minute out of range"
            }
            2 => {
                request.cron = "every minute".to_owned();
                "cron not an expression"
            }
            3 => {
                request.timezone = Some("Mars/Olympus_Mons".to_owned());
                "unknown time zone"
            }
            4 => {
                request.name = "bad name!".to_owned();
                "recurring name characters"
            }
            5 => {
                request.job.generation = Some(1);
                "recurring job with a generation"
            }
            6 => {
                request.job.schedule = Some(ScheduleRequest { at_ms: None, delay_ms: Some(1_000) });
                "recurring job with a schedule"
            }
            _ => {
                request.job.job_type = None;
                "recurring job without job_type"
            }
        };
        Expect::Invalid(what)
    }

    fn batch(&mut self, wall_ms: u64) -> ClientOp {
        let len = 1 + self.rng.below(BATCH_JOBS_MAX) as usize;
        let mut requests: Vec<EnqueueRequest> = (0..len).map(|_| self.valid_request(wall_ms)).collect();
        if self.rng.chance(1, 4) {
            let index = self.rng.below(len as u64) as usize;
            let expect = self.break_request(&mut requests[index], index);
            return ClientOp::Send { input: Input::EnqueueBatch(requests), expect };
        }
        if self.rng.chance(1, 20) {
            return ClientOp::Send { input: Input::EnqueueBatch(Vec::new()), expect: Expect::Invalid("empty batch") };
        }
        ClientOp::Send { input: Input::EnqueueBatch(requests), expect: Expect::Valid }
    }

    fn cancel(&mut self) -> ClientOp {
        let roll = self.rng.below(10);
        let request = match roll {
            0..=4 => match self.known_id() {
                Some(id) => CancelRequest { job_id: Some(id), ..CancelRequest::default() },
                None => CancelRequest { job_id: Some(self.stranger_id()), ..CancelRequest::default() },
            },
            5 => CancelRequest { job_id: Some(self.stranger_id()), ..CancelRequest::default() },
            6..=7 => CancelRequest { tag: Some(self.tag()), ..CancelRequest::default() },
            8 => CancelRequest { chain_group_id: Some(self.group()), ..CancelRequest::default() },
            _ => {
                if self.rng.chance(1, 3) {
                    let request = CancelRequest::default();
                    return ClientOp::Send { input: Input::Cancel(request), expect: Expect::Invalid("no selector") };
                }
                CancelRequest { job_id: None, tag: Some(self.tag()), chain_group_id: Some(self.group()) }
            }
        };
        ClientOp::Send { input: Input::Cancel(request), expect: Expect::Any }
    }

    fn read(&mut self) -> ClientOp {
        if self.rng.chance(1, 2) {
            if let Some(id) = self.known_id() {
                return ClientOp::Get(id);
            }
        }
        let mut query = JobQuery {
            limit: 1 + self.rng.below(JobQuery::LIMIT_MAX as u64) as usize,
            descending: self.rng.chance(1, 2),
            ..JobQuery::default()
        };
        if self.rng.chance(1, 2) {
            let state = JobState::ALL[self.rng.below(JobState::ALL.len() as u64) as usize];
            query.states.push(state);
        }
        if self.rng.chance(1, 3) {
            query.queues.push(self.queue());
        }
        if self.rng.chance(1, 4) {
            query.tag = Some(self.tag());
        }
        if self.rng.chance(1, 4) {
            query.subject_key_prefix = Some("hot-".to_owned());
        }
        if self.rng.chance(1, 4) {
            query.bytes_max = Some(self.rng.below(400) as usize);
        }
        ClientOp::Query(query)
    }

    /// A valid request; its absolute times are around `wall_ms`.
    fn valid_request(&mut self, wall_ms: u64) -> EnqueueRequest {
        let rng = &mut self.rng;
        let subject_key = if rng.chance(7, 10) {
            format!("hot-{}", rng.below(HOT_SUBJECTS))
        } else {
            format!("cold-{}", rng.below(COLD_SUBJECTS))
        };
        let generation = self.generation(&subject_key);
        let rng = &mut self.rng;
        let mut request = EnqueueRequest {
            subject_key: Some(subject_key),
            generation,
            queue: Some(QUEUES[rng.below(QUEUES.len() as u64) as usize].to_owned()),
            payload_json: rng.chance(1, 2).then(|| format!("{{\"n\":{}}}", rng.below(1000))),
            ..EnqueueRequest::default()
        };
        if rng.chance(3, 10) {
            request.job_type = Some("build:step".to_owned());
            request.exec = Some(ExecRequest { command: Some("make".to_owned()), ..ExecRequest::default() });
        } else {
            request.job_type = Some(JOB_TYPES[rng.below(JOB_TYPES.len() as u64) as usize].to_owned());
        }
        if rng.chance(4, 10) {
            request.priority = Some(rng.below(11) as i64 - 5);
        }
        if rng.chance(1, 2) {
            request.max_attempts = Some(1 + rng.below(5) as i64);
        }
        if rng.chance(3, 10) {
            request.backoff = Some(BackoffRequest {
                base_ms: Some(rng.below(2_000) as i64),
                factor: Some(1.0 + rng.below(200) as f64 / 100.0),
                max_ms: Some(rng.below(60_000) as i64),
                jitter: Some(rng.below(50) as f64 / 100.0),
            });
        }
        if rng.chance(3, 10) {
            request.timeout_ms = Some(50 + rng.below(5_000) as i64);
        }
        if rng.chance(15, 100) {
            request.ttl_ms = Some(100 + rng.below(600_000) as i64);
        }
        if rng.chance(1, 10) {
            request.deadline_ms = Some((wall_ms + 100 + rng.below(1_800_000)) as i64);
        }
        if rng.chance(2, 10) {
            request.schedule = Some(if rng.chance(1, 2) {
                ScheduleRequest { at_ms: Some((wall_ms + rng.below(3_600_000)) as i64), delay_ms: None }
            } else {
                ScheduleRequest { at_ms: None, delay_ms: Some(rng.below(600_000) as i64) }
            });
        }
        if rng.chance(2, 10) {
            let wait_for_event = rng.chance(1, 2).then(|| format!("ev-{}", rng.below(EVENTS)));
            request.conditions = Some(Conditions {
                wait_for_idle: rng.chance(1, 3),
                require_charging: rng.chance(1, 3),
                wait_for_event,
            });
        }
        if rng.chance(3, 10) {
            request.tag = Some(format!("tag-{}", rng.below(TAGS)));
        }
        if rng.chance(2, 10) {
            request.chain_group_id = Some(format!("grp-{}", rng.below(GROUPS)));
        }
        if let Some(event) = request.conditions.as_ref().and_then(|c| c.wait_for_event.clone()) {
            self.events_used.insert(event);
        }
        if self.rng.chance(15, 100) {
            request.parent_job_id = self.known_id().map(|id| id.to_string());
        }
        request
    }

    /// Absent (next generation), the next one, a duplicate of the last, or a stale one.
    fn generation(&mut self, subject_key: &str) -> Option<i64> {
        let last = self.generations.get(subject_key).copied();
        let roll = self.rng.below(10);
        let generation = match (roll, last) {
            (0..=3, _) => None,
            (_, None) => Some(self.rng.below(3) as i64),
            (4..=6, Some(last)) => Some(last + 1 + self.rng.below(2) as i64),
            (7..=8, Some(last)) => Some(last),
            (_, Some(last)) => Some((last - 1 - self.rng.below(2) as i64).max(0)),
        };
        if let Some(generation) = generation {
            let entry = self.generations.entry(subject_key.to_owned()).or_insert(generation);
            *entry = (*entry).max(generation);
        }
        generation
    }

    /// Makes a valid request (number `index` of its batch) invalid in one way.
    fn break_request(&mut self, request: &mut EnqueueRequest, index: usize) -> Expect {
        if self.rng.chance(1, 18) {
            request.parent_job_id = Some(self.stranger_id().to_string());
            return Expect::UnknownParent { index };
        }
        let what = match self.rng.below(17) {
            0 => {
                request.job_type = None;
                "job_type missing"
            }
            1 => {
                request.queue = Some("Bad Queue".to_owned());
                "queue characters"
            }
            2 => {
                request.subject_key = Some(String::new());
                "subject_key empty"
            }
            3 => {
                request.subject_key = Some("a\u{7}b".to_owned());
                "subject_key control character"
            }
            4 => {
                request.generation = Some(-1);
                "generation negative"
            }
            5 => {
                request.priority = Some(i64::from(i32::MAX) + 1);
                "priority out of range"
            }
            6 => {
                request.max_attempts = Some(if self.rng.chance(1, 2) { 0 } else { 101 });
                "max_attempts out of range"
            }
            7 => {
                request.timeout_ms = Some(0);
                "timeout_ms zero"
            }
            8 => {
                request.ttl_ms = Some(-5);
                "ttl_ms negative"
            }
            9 => {
                request.schedule = Some(ScheduleRequest { at_ms: Some(1), delay_ms: Some(1) });
                "schedule at and delay"
            }
            10 => {
                request.backoff = Some(BackoffRequest { factor: Some(0.5), ..BackoffRequest::default() });
                "backoff factor below 1"
            }
            11 => {
                request.backoff = Some(BackoffRequest { jitter: Some(2.0), ..BackoffRequest::default() });
                "backoff jitter above 1"
            }
            12 => {
                request.exec = None;
                request.job_type = Some("no_such_type".to_owned());
                "unknown job type"
            }
            13 => {
                request.exec = Some(ExecRequest { command: Some(String::new()), ..ExecRequest::default() });
                "exec command empty"
            }
            14 => {
                request.parent_job_id = Some("not-a-uuid".to_owned());
                "parent_job_id format"
            }
            16 => {
                request.tag = Some("t".repeat(200));
                "tag too long"
            }
            15 => {
                request.conditions = Some(Conditions { wait_for_event: Some(String::new()), ..Conditions::default() });
                "wait_for_event empty"
            }
            _ => {
                request.conditions =
                    Some(Conditions { wait_for_event: Some("e".repeat(200)), ..Conditions::default() });
                "wait_for_event too long"
            }
        };
        Expect::Invalid(what)
    }

    fn known_id(&mut self) -> Option<JobId> {
        if self.known_ids.is_empty() {
            return None;
        }
        Some(self.known_ids[self.rng.below(self.known_ids.len() as u64) as usize])
    }

    /// An id no job has: the engine's ids come from another stream.
    fn stranger_id(&mut self) -> JobId {
        JobId::from_u128(u128::from(self.rng.next_u64()) | 0xdead << 64)
    }

    fn queue(&mut self) -> String {
        QUEUES[self.rng.below(QUEUES.len() as u64) as usize].to_owned()
    }

    fn tag(&mut self) -> String {
        format!("tag-{}", self.rng.below(TAGS))
    }

    fn group(&mut self) -> String {
        format!("grp-{}", self.rng.below(GROUPS))
    }
}
