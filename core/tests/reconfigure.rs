//! `Engine::reconfigure`: limits and throttle replaced while the engine runs (the
//! daemon's config reload). What runs keeps running; what starts next obeys the new
//! limits.

mod harness;

use harness::{request, World};
use semantica_core::{Config, Input, SystemState, Throttle};

fn serial_world(limit: usize) -> World {
    let mut config = Config::new(3, ["work"]);
    config.queue_concurrency.insert("serial".into(), limit);
    World::new(config, 7)
}

fn enqueue_serial(world: &mut World, subject: &str) {
    let mut r = request(subject);
    r.queue = Some("serial".into());
    world.enqueue_ok(r);
}

#[test]
fn a_raised_queue_limit_lets_the_next_claim_start_a_job() {
    let mut world = serial_world(1);
    for subject in ["a", "b", "c"] {
        enqueue_serial(&mut world, subject);
    }
    assert!(world.claim().is_some());
    assert_eq!(world.claim(), None, "the queue's limit is 1");
    let mut config = world.engine.config().clone();
    config.queue_concurrency.insert("serial".into(), 2);
    world.engine.reconfigure(config);
    assert!(world.claim().is_some(), "the raised limit starts a second job");
    assert_eq!(world.claim(), None, "and no third");
}

#[test]
fn a_lowered_queue_limit_stops_nothing_that_runs_and_starts_nothing_more() {
    let mut world = serial_world(2);
    for subject in ["a", "b", "c"] {
        enqueue_serial(&mut world, subject);
    }
    let first = world.claim().expect("first");
    let second = world.claim().expect("second");
    let mut config = world.engine.config().clone();
    config.queue_concurrency.insert("serial".into(), 1);
    world.engine.reconfigure(config);
    assert_eq!(world.claim(), None, "two run, the new limit is 1");
    assert!(world.runs.iter().all(|run| !run.killed), "nothing running is stopped: {:?}", world.runs);
    world.succeed(first.id);
    assert_eq!(world.claim(), None, "one still runs");
    world.succeed(second.id);
    assert!(world.claim().is_some(), "the third starts once the queue is under its new limit");
}

#[test]
fn a_throttle_added_at_run_time_holds_low_priority_jobs() {
    let mut world = World::new(Config::new(3, ["work"]), 7);
    world.step(Input::SystemChanged(SystemState { cpu_load_percent: 95, is_idle: false, is_charging: true }));
    world.enqueue_ok(request("low"));
    let mut config = world.engine.config().clone();
    config.throttle = Some(Throttle { cpu_limit_percent: 80, priority_floor: 5 });
    world.engine.reconfigure(config.clone());
    assert_eq!(world.claim(), None, "the CPU is over the new limit");
    config.throttle = None;
    world.engine.reconfigure(config);
    assert!(world.claim().is_some(), "the throttle removed again");
}
