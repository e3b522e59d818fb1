//! Absolute times follow a stepped wall clock; durations do not (API.md, "Time that
//! jumps"). A client's `schedule.at` and `deadline` are wall-clock epoch ms; the engine
//! places them on its own timeline with the offset it was told (`Input::WallClock`) and
//! moves them when the offset changes: a deadline always, a `schedule.at` until it came.

mod harness;

use harness::{config, request, World, START_MS};
use semantica_core::{limits, EnqueueRequest, Input, JobState, Reply, ScheduleRequest};

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;

fn at(subject: &str, wall_ms: u64) -> EnqueueRequest {
    EnqueueRequest {
        schedule: Some(ScheduleRequest { at_ms: Some(wall_ms as i64), delay_ms: None }),
        ..request(subject)
    }
}

fn with_deadline(subject: &str, wall_ms: u64) -> EnqueueRequest {
    EnqueueRequest { deadline_ms: Some(wall_ms as i64), ..request(subject) }
}

fn wall_clock(world: &mut World, offset_ms: i64) -> Option<u64> {
    world.step(Input::WallClock { offset_ms }).wake_at_ms
}

#[test]
fn a_schedule_at_waits_for_the_wall_clock_after_a_step_back() {
    let mut world = World::new(config(), 1);
    wall_clock(&mut world, 0);
    let job = world.enqueue_ok(at("s", START_MS + 10 * MINUTE_MS)).job_id;
    // The wall clock is set back an hour: 10:10 on the wall is now 70 minutes away.
    wall_clock(&mut world, -(HOUR_MS as i64));
    assert_eq!(world.job(job).due_at_ms, START_MS + 70 * MINUTE_MS);
    world.advance(10 * MINUTE_MS + 1);
    assert_eq!(world.job(job).state, JobState::Scheduled, "the wall clock reads 9:10");
    assert!(world.claim().is_none());
    world.advance(60 * MINUTE_MS);
    assert_eq!(world.claim().map(|job| job.id), Some(job), "the wall clock reached 10:10");
}

#[test]
fn a_schedule_at_comes_at_once_after_a_step_forward_past_it() {
    let mut world = World::new(config(), 2);
    wall_clock(&mut world, 0);
    let job = world.enqueue_ok(at("s", START_MS + 10 * MINUTE_MS)).job_id;
    let wake = wall_clock(&mut world, HOUR_MS as i64);
    assert_eq!(world.job(job).state, JobState::Queued, "its time has passed on the wall clock");
    assert!(wake.is_none_or(|wake| wake > world.now_ms));
    assert_eq!(world.claim().map(|job| job.id), Some(job));
}

#[test]
fn a_job_whose_schedule_at_came_stays_due_when_the_wall_clock_steps_back() {
    let mut world = World::new(config(), 3);
    wall_clock(&mut world, 0);
    // A deadline keeps it following the wall clock after its `at` has come.
    let request =
        EnqueueRequest { deadline_ms: Some((START_MS + 5 * HOUR_MS) as i64), ..at("s", START_MS + MINUTE_MS) };
    let job = world.enqueue_ok(request).job_id;
    world.advance(MINUTE_MS);
    assert_eq!(world.job(job).state, JobState::Queued);
    wall_clock(&mut world, -(HOUR_MS as i64));
    let moved = world.job(job);
    assert_eq!((moved.state, moved.due_at_ms), (JobState::Queued, START_MS + MINUTE_MS), "due stays due");
    assert_eq!(moved.deadline_ms, Some(START_MS + 6 * HOUR_MS), "the deadline follows the wall clock");
    assert_eq!(world.claim().map(|job| job.id), Some(job));
}

#[test]
fn a_waiting_job_is_skipped_when_the_wall_clock_steps_past_its_deadline() {
    let mut world = World::new(config(), 4);
    wall_clock(&mut world, 0);
    let request =
        EnqueueRequest { deadline_ms: Some((START_MS + 30 * MINUTE_MS) as i64), ..at("s", START_MS + 20 * MINUTE_MS) };
    let job = world.enqueue_ok(request).job_id;
    wall_clock(&mut world, HOUR_MS as i64);
    let skipped = world.job(job);
    assert_eq!(skipped.state, JobState::SkippedDeadline);
    assert_eq!(skipped.wall_offset_ms, None, "an ended job follows nothing");
}

#[test]
fn a_running_job_fails_at_the_next_tick_when_the_wall_clock_steps_past_its_deadline() {
    let mut world = World::new(config(), 5);
    wall_clock(&mut world, 0);
    let job = world.enqueue_ok(with_deadline("s", START_MS + 30 * MINUTE_MS)).job_id;
    world.claim().expect("starts");
    let wake = wall_clock(&mut world, HOUR_MS as i64);
    assert!(wake.is_some_and(|wake| wake <= world.now_ms), "the deadline is due: {wake:?}");
    assert_eq!(world.job(job).state, JobState::Running, "the step itself kills nothing");
    world.step(Input::Tick);
    let failed = world.job(job);
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.error.map(|error| error.kind), Some(semantica_core::ErrorKind::DeadlineExceeded));
}

#[test]
fn a_deadline_moves_later_when_the_wall_clock_steps_back() {
    let mut world = World::new(config(), 6);
    wall_clock(&mut world, 0);
    let job = world.enqueue_ok(with_deadline("s", START_MS + 30 * MINUTE_MS)).job_id;
    world.claim().expect("starts");
    wall_clock(&mut world, -(HOUR_MS as i64));
    world.advance(31 * MINUTE_MS);
    assert_eq!(world.job(job).state, JobState::Running, "the wall clock reads 9:31; the deadline is 10:30");
    world.advance(60 * MINUTE_MS);
    assert_eq!(world.job(job).state, JobState::Failed);
}

#[test]
fn durations_do_not_follow_the_wall_clock() {
    let mut world = World::new(config(), 7);
    wall_clock(&mut world, 0);
    let delayed = EnqueueRequest {
        schedule: Some(ScheduleRequest { at_ms: None, delay_ms: Some((10 * MINUTE_MS) as i64) }),
        ttl_ms: Some((20 * MINUTE_MS) as i64),
        ..request("d")
    };
    let job = world.enqueue_ok(delayed).job_id;
    let before = world.job(job);
    wall_clock(&mut world, HOUR_MS as i64);
    wall_clock(&mut world, -(3 * HOUR_MS as i64));
    assert_eq!(world.job(job), before, "nothing of a job without absolute times moved");
    world.advance(10 * MINUTE_MS);
    assert_eq!(world.job(job).state, JobState::Queued);
}

#[test]
fn a_claim_moves_a_job_that_the_round_has_not_reached() {
    let mut world = World::new(config(), 8);
    wall_clock(&mut world, 0);
    // A full round of jobs waiting for their `at`, then one ready job with a deadline.
    let far: Vec<EnqueueRequest> =
        (0..limits::RETIME_ROUND_JOBS_MAX).map(|n| at(&format!("far-{n}"), START_MS + 10 * HOUR_MS)).collect();
    assert!(matches!(world.step(Input::EnqueueBatch(far)).reply, Reply::EnqueuedBatch(_)));
    let last = world.enqueue_ok(with_deadline("last", START_MS + 30 * MINUTE_MS)).job_id;
    let wake = wall_clock(&mut world, HOUR_MS as i64);
    assert_eq!(wake, Some(world.now_ms), "more jobs to move: the engine asks for a tick at once");
    assert_eq!(world.job(last).deadline_ms, Some(START_MS + 30 * MINUTE_MS), "beyond the first round");
    assert!(world.claim().is_none(), "its deadline has passed on the wall clock");
    assert_eq!(world.job(last).state, JobState::SkippedDeadline);
}

#[test]
fn ticks_move_the_rest_of_a_step_in_rounds() {
    let mut world = World::new(config(), 9);
    wall_clock(&mut world, 0);
    let count = limits::RETIME_ROUND_JOBS_MAX + 5;
    for chunk in (0..count).collect::<Vec<_>>().chunks(limits::BATCH_JOBS_MAX) {
        let requests = chunk.iter().map(|n| at(&format!("j-{n}"), START_MS + 2 * HOUR_MS)).collect();
        assert!(matches!(world.step(Input::EnqueueBatch(requests)).reply, Reply::EnqueuedBatch(_)));
    }
    let wake = wall_clock(&mut world, -(HOUR_MS as i64));
    assert_eq!(wake, Some(world.now_ms));
    let wake = world.step(Input::Tick).wake_at_ms;
    assert_eq!(wake, Some(START_MS + 3 * HOUR_MS), "every job moved; the next wake is their `at`");
    for job in world.jobs() {
        assert_eq!((job.due_at_ms, job.wall_offset_ms), (START_MS + 3 * HOUR_MS, Some(-(HOUR_MS as i64))));
    }
}

#[test]
fn jobs_placed_before_a_restart_move_once_the_new_engine_is_told_the_wall_clock() {
    let mut world = World::new(config(), 10);
    wall_clock(&mut world, -(HOUR_MS as i64));
    let job = world.enqueue_ok(at("s", START_MS + 10 * MINUTE_MS)).job_id;
    assert_eq!(world.job(job).due_at_ms, START_MS + 70 * MINUTE_MS);
    // While the daemon was down, the wall clock was put right.
    world.restart();
    assert_eq!(world.job(job).due_at_ms, START_MS + 70 * MINUTE_MS, "not moved before the engine is told");
    // Told the same offset as a fresh engine would assume (0): it still moves.
    wall_clock(&mut world, 0);
    assert_eq!(world.job(job).due_at_ms, START_MS + 10 * MINUTE_MS);
    world.advance(10 * MINUTE_MS);
    assert_eq!(world.claim().map(|job| job.id), Some(job));
}

#[test]
fn a_job_enqueued_on_a_stepped_wall_clock_is_placed_with_its_offset() {
    let mut world = World::new(config(), 11);
    wall_clock(&mut world, 2 * HOUR_MS as i64);
    // The client reads the wall clock: two hours ahead of the engine's timeline.
    let wall_now = START_MS + 2 * HOUR_MS;
    let job = world
        .enqueue_ok(EnqueueRequest { deadline_ms: Some((wall_now + MINUTE_MS) as i64), ..at("s", wall_now + 5_000) })
        .job_id;
    let placed = world.job(job);
    assert_eq!((placed.due_at_ms, placed.deadline_ms), (START_MS + 5_000, Some(START_MS + MINUTE_MS)));
    assert_eq!((placed.at_wall_ms, placed.deadline_wall_ms), (Some(wall_now + 5_000), Some(wall_now + MINUTE_MS)));
}
