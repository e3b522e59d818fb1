//! Recurring jobs: slots fire from the engine's own `Tick`, at most once each, with the
//! slot's epoch second as the generation; slots missed while no engine ran fire once.

mod harness;

use harness::{config, request, World, START_MS};
use proptest::prelude::*;
use semantica_core::{Input, Job, RecurringRequest, Rejection, Reply, Store, ValidationKind};

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;

fn set(world: &mut World, name: &str, cron: &str, timezone: Option<&str>) -> Reply {
    let request = RecurringRequest {
        name: name.into(),
        cron: cron.into(),
        timezone: timezone.map(Into::into),
        job: request(&format!("recurring-{name}")),
    };
    world.step(Input::SetRecurring(Box::new(request))).reply
}

fn next_at(world: &World, name: &str) -> Option<u64> {
    world.store.recurring(name).unwrap().expect("stored").next_at_ms
}

/// The jobs the recurring job `name` enqueued, in enqueue order.
fn fired(world: &World, name: &str) -> Vec<Job> {
    world.jobs().into_iter().filter(|job| job.subject_key == format!("recurring-{name}")).collect()
}

/// Ms since the epoch of a UTC wall time.
fn utc_ms(text: &str) -> u64 {
    let at: chrono::DateTime<chrono::Utc> = text.parse().unwrap();
    at.timestamp_millis() as u64
}

#[test]
fn a_slot_fires_once_with_its_epoch_second_as_generation() {
    let mut world = World::new(config(), 1);
    let Reply::RecurringSet { next_at_ms: Some(first), .. } = set(&mut world, "m", "* * * * *", None) else { panic!() };
    assert!(first > START_MS && first - START_MS <= MINUTE_MS && first % MINUTE_MS == 0);
    let seen = world.step(Input::Tick);
    assert_eq!(seen.wake_at_ms, Some(first), "the engine asks to be woken at the slot");
    assert!(fired(&world, "m").is_empty(), "nothing before the slot");
    world.now_ms = first;
    world.step(Input::Tick);
    world.step(Input::Tick);
    let jobs = fired(&world, "m");
    assert_eq!(jobs.len(), 1, "one slot, one job, however many ticks");
    assert_eq!(jobs[0].generation, first / 1000);
    let stored = world.store.recurring("m").unwrap().unwrap();
    assert_eq!((stored.last_slot_ms, stored.last_enqueued_job_id), (Some(first), Some(jobs[0].id)));
    assert_eq!(stored.next_at_ms, Some(first + MINUTE_MS));
}

#[test]
fn slots_missed_while_no_engine_ran_fire_once_the_latest() {
    let mut world = World::new(config(), 2);
    set(&mut world, "m", "*/5 * * * *", None);
    let first = next_at(&world, "m").unwrap();
    // The daemon is down for three hours: 36 slots pass.
    world.now_ms = first + 3 * HOUR_MS + 2 * MINUTE_MS;
    world.restart();
    world.step(Input::Tick);
    let jobs = fired(&world, "m");
    assert_eq!(jobs.len(), 1, "missed slots collapse into one");
    assert_eq!(jobs[0].generation, (first + 3 * HOUR_MS) / 1000, "the latest slot");
    assert_eq!(next_at(&world, "m"), Some(first + 3 * HOUR_MS + 5 * MINUTE_MS));
}

#[test]
fn replacing_a_due_recurring_job_starts_from_the_next_slot_of_the_new_expression() {
    let mut world = World::new(config(), 3);
    set(&mut world, "r", "* * * * *", None);
    let due = next_at(&world, "r").unwrap();
    world.now_ms = due + 10; // due, but no tick yet
    let Reply::RecurringSet { next_at_ms, .. } = set(&mut world, "r", "0 * * * *", None) else { panic!() };
    assert!(next_at_ms.unwrap() > world.now_ms && next_at_ms.unwrap() % HOUR_MS == 0);
    world.step(Input::Tick);
    assert!(fired(&world, "r").is_empty(), "the replaced expression's due slot does not fire");
}

#[test]
fn a_slot_follows_its_time_zone_and_the_dst_rules_of_croner() {
    let mut world = World::new(config(), 4);
    // 02:30 does not exist in Berlin on 2026-03-29 (02:00 -> 03:00): a fixed-time slot
    // fires at the first minute after the gap, 03:00 CEST = 01:00 UTC.
    world.now_ms = utc_ms("2026-03-28T12:00:00Z");
    let Reply::RecurringSet { next_at_ms, .. } = set(&mut world, "gap", "30 2 * * *", Some("Europe/Berlin")) else {
        panic!()
    };
    assert_eq!(next_at_ms, Some(utc_ms("2026-03-29T01:00:00Z")));
    // 02:30 happens twice on 2026-10-25 (03:00 -> 02:00): it fires once, on the first pass.
    world.now_ms = utc_ms("2026-10-24T12:00:00Z");
    set(&mut world, "twice", "30 2 * * *", Some("Europe/Berlin"));
    assert_eq!(next_at(&world, "twice"), Some(utc_ms("2026-10-25T00:30:00Z")));
    world.now_ms = utc_ms("2026-10-25T00:30:00Z");
    world.step(Input::Tick);
    assert_eq!(next_at(&world, "twice"), Some(utc_ms("2026-10-26T01:30:00Z")), "no second pass");
    // 03:00 in Berlin in winter (CET, UTC+1) is 02:00 UTC.
    world.now_ms = utc_ms("2026-11-30T12:00:00Z");
    let Reply::RecurringSet { next_at_ms, .. } = set(&mut world, "b", "0 3 * * *", Some("Europe/Berlin")) else {
        panic!()
    };
    assert_eq!(next_at_ms, Some(utc_ms("2026-12-01T02:00:00Z")));
}

/// Slots follow the wall clock: stepped forward half an hour, an hourly slot comes half
/// an hour sooner; stepped back an hour past a slot that fired, that slot does not fire
/// again (its generation would be the same), and the next one does.
#[test]
fn slots_follow_a_stepped_wall_clock_and_never_fire_twice() {
    let mut world = World::new(config(), 6);
    set(&mut world, "h", "0 * * * *", None);
    let first = next_at(&world, "h").unwrap();
    world.step(Input::WallClock { offset_ms: 30 * MINUTE_MS as i64 });
    assert_eq!(next_at(&world, "h"), Some(first - 30 * MINUTE_MS), "the slot comes sooner on engine time");
    world.now_ms = first - 30 * MINUTE_MS;
    world.step(Input::Tick);
    let jobs = fired(&world, "h");
    assert_eq!(jobs.iter().map(|job| job.generation).collect::<Vec<_>>(), [first / 1000], "the wall-clock slot");
    // The slot's job ends, so an enqueue of the same generation would not be deduplicated.
    let cancel = semantica_core::CancelRequest { job_id: Some(jobs[0].id), ..Default::default() };
    world.step(Input::Cancel(cancel));
    // Back an hour: the wall clock reads a time before the slot that fired.
    world.step(Input::WallClock { offset_ms: -30 * MINUTE_MS as i64 });
    assert_eq!(next_at(&world, "h"), Some(first + 30 * MINUTE_MS + HOUR_MS), "the next slot after the fired one");
    world.now_ms = first + 30 * MINUTE_MS; // the wall clock reads `first` again
    world.step(Input::Tick);
    assert_eq!(fired(&world, "h").len(), 1, "a slot fires once, whatever the wall clock did");
    world.now_ms = first + 30 * MINUTE_MS + HOUR_MS;
    world.step(Input::Tick);
    let generations: Vec<u64> = fired(&world, "h").iter().map(|job| job.generation).collect();
    assert_eq!(generations, [first / 1000, (first + HOUR_MS) / 1000]);
}

/// A restarted engine is told the wall clock's offset again right after recovery; slots
/// missed while no engine ran must survive that (they are due, and the next tick fires
/// the latest), not be moved on by it.
#[test]
fn regression_missed_slots_survive_the_offset_told_after_a_restart() {
    let mut world = World::new(config(), 7);
    let offset_ms = 30 * MINUTE_MS as i64;
    world.step(Input::WallClock { offset_ms });
    set(&mut world, "h", "0 * * * *", None);
    let first = next_at(&world, "h").unwrap();
    world.now_ms = first + 3 * HOUR_MS + MINUTE_MS; // down for three slots
    world.restart();
    world.step(Input::WallClock { offset_ms });
    assert_eq!(next_at(&world, "h"), Some(first), "still due after the offset is told again");
    world.step(Input::Tick);
    let generations: Vec<u64> = fired(&world, "h").iter().map(|job| job.generation).collect();
    let latest_wall_slot = (first + 3 * HOUR_MS).saturating_add_signed(offset_ms);
    assert_eq!(generations, [latest_wall_slot / 1000], "one job, for the latest slot on the wall clock");
}

/// Changing a recurring job's time zone moves its next slot to that zone's wall clock,
/// and keeps what it fired.
#[test]
fn a_time_zone_change_moves_the_next_slot_and_keeps_the_last() {
    let mut world = World::new(config(), 8);
    world.now_ms = utc_ms("2026-11-30T12:00:00Z");
    set(&mut world, "z", "0 3 * * *", None);
    assert_eq!(next_at(&world, "z"), Some(utc_ms("2026-12-01T03:00:00Z")));
    world.now_ms = utc_ms("2026-12-01T03:00:00Z");
    world.step(Input::Tick);
    let fired_before = world.store.recurring("z").unwrap().unwrap();
    assert_eq!(fired_before.last_slot_ms, Some(utc_ms("2026-12-01T03:00:00Z")));
    // 03:00 in Tokyo (UTC+9) is 18:00 UTC the day before: the next is 2026-12-01T18:00Z.
    set(&mut world, "z", "0 3 * * *", Some("Asia/Tokyo"));
    let moved = world.store.recurring("z").unwrap().unwrap();
    assert_eq!(moved.next_at_ms, Some(utc_ms("2026-12-01T18:00:00Z")));
    assert_eq!(
        (moved.last_slot_ms, moved.last_enqueued_job_id),
        (fired_before.last_slot_ms, fired_before.last_enqueued_job_id)
    );
}

#[test]
fn a_bad_expression_zone_name_or_job_is_refused_naming_the_field() {
    let mut world = World::new(config(), 5);
    let cases = [
        ("x", "* * * *", None, "cron", ValidationKind::InvalidFormat),
        ("x", "0 0 * * * *", None, "cron", ValidationKind::InvalidFormat),
        ("x", "61 * * * *", None, "cron", ValidationKind::InvalidFormat),
        ("x", "* * * * *", Some("Mars/Olympus"), "timezone", ValidationKind::UnknownTimeZone),
        ("", "* * * * *", None, "name", ValidationKind::Empty),
        ("a b", "* * * * *", None, "name", ValidationKind::InvalidCharacters),
    ];
    for (name, cron, zone, field, kind) in cases {
        match set(&mut world, name, cron, zone) {
            Reply::Rejected(Rejection::Validation(error)) => {
                assert_eq!((error.field.as_str(), error.kind), (field, kind))
            }
            other => panic!("{name:?} {cron:?} {zone:?} answered {other:?}"),
        }
    }
    let mut bad_job = request("s");
    bad_job.queue = Some("Q".into());
    let request = RecurringRequest { name: "j".into(), cron: "* * * * *".into(), timezone: None, job: bad_job };
    match world.step(Input::SetRecurring(Box::new(request))).reply {
        Reply::Rejected(Rejection::Validation(error)) => assert_eq!(error.field, "job.queue"),
        other => panic!("{other:?}"),
    }
    assert!(world.store.recurring_list().unwrap().is_empty(), "nothing refused was stored");
    assert_eq!(
        world.step(Input::DeleteRecurring { name: "none".into() }).reply,
        Reply::RecurringDeleted { deleted: false }
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the ticks, gaps and restarts: every fired job's generation is a slot of
    /// the expression at or before the tick that fired it, later than the previous one, the
    /// latest such slot (missed ones collapse), and after every tick no slot is due.
    #[test]
    fn a_slot_fires_at_most_once_and_none_goes_missing(
        seed: u64,
        cron in prop::sample::select(vec!["* * * * *", "*/7 * * * *", "0 * * * *", "15 3 * * 1-5", "0 0 1 * *"]),
        steps in prop::collection::vec(
            (0u64..3 * HOUR_MS, any::<bool>(), prop::option::weighted(0.3, -(4 * HOUR_MS as i64)..4 * HOUR_MS as i64)),
            1..30,
        ),
    ) {
        let mut world = World::new(config(), seed);
        let answer = set(&mut world, "p", cron, Some("America/New_York"));
        prop_assert!(matches!(answer, Reply::RecurringSet { .. }), "set answered {:?}", answer);
        let schedule = semantica_core::cron::Schedule::parse(cron, "America/New_York").unwrap();
        let mut last_slot: Option<u64> = None;
        let mut offset_ms = 0i64;
        for (gap_ms, restart, step_ms) in steps {
            world.now_ms += gap_ms;
            if restart {
                world.restart();
                // As the daemon does after recovery: the wall clock's offset, again.
                world.step(Input::WallClock { offset_ms });
            }
            if let Some(step_ms) = step_ms {
                offset_ms += step_ms;
                world.step(Input::WallClock { offset_ms });
            }
            world.step(Input::Tick);
            let wall_now_ms = world.now_ms.saturating_add_signed(offset_ms);
            let stored = world.store.recurring("p").unwrap().unwrap();
            prop_assert!(stored.next_at_ms.is_none_or(|at| at > world.now_ms), "a slot was left due");
            if let Some(next_at_ms) = stored.next_at_ms {
                // The next slot is the wall clock's next one after now and the last fired.
                let after = wall_now_ms.max(stored.last_slot_ms.unwrap_or(0));
                let expected = schedule.next_after(after).unwrap().saturating_add_signed(-offset_ms).max(world.now_ms + 1);
                prop_assert_eq!(next_at_ms, expected, "the next slot follows the wall clock");
            }
            if stored.last_slot_ms != last_slot {
                let slot = stored.last_slot_ms.unwrap();
                prop_assert!(last_slot.is_none_or(|last| slot > last), "slot {slot} after {last_slot:?}");
                prop_assert_eq!(Some(slot), schedule.latest_at_or_before(wall_now_ms), "the latest slot fires");
                last_slot = Some(slot);
            }
        }
        let jobs = fired(&world, "p");
        let generations: Vec<u64> = jobs.iter().map(|job| job.generation).collect();
        prop_assert!(generations.windows(2).all(|w| w[0] < w[1]), "each slot once: {generations:?}");
        prop_assert_eq!(jobs.last().map(|job| job.generation * 1000), last_slot);
    }
}
