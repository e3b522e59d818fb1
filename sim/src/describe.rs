//! Short, readable forms of inputs, replies and actions for failure reports. The trace
//! hash is taken over the full `Debug` text; these are only for people.

use semantica_core::{Action, EnqueueRequest, Input, Job, JobId, Outcome, Rejection, Reply, Report};

/// The first 8 hex digits of the id's UUID form: enough to tell jobs of one run apart.
pub fn id(id: JobId) -> String {
    format!("{:08x}", (id.as_u128() >> 96) as u32)
}

pub fn job(job: &Job) -> String {
    let mut text = format!(
        "{} {} g{} {} q={} p={} att={}/{}",
        id(job.id),
        job.subject_key,
        job.generation,
        job.state,
        job.queue,
        job.priority,
        job.attempts,
        job.max_attempts
    );
    if job.reap_pending {
        text.push_str(" reap_pending");
    }
    text
}

fn request(request: &EnqueueRequest) -> String {
    let mut text = format!(
        "{} g={} q={} type={}",
        request.subject_key.as_deref().unwrap_or("-"),
        request.generation.map_or("auto".to_owned(), |g| g.to_string()),
        request.queue.as_deref().unwrap_or("-"),
        request.job_type.as_deref().unwrap_or("-"),
    );
    let mut option = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            text.push_str(&format!(" {name}={value}"));
        }
    };
    option("p", request.priority.map(|p| p.to_string()));
    option("max_att", request.max_attempts.map(|n| n.to_string()));
    option("timeout", request.timeout_ms.map(|n| n.to_string()));
    option("ttl", request.ttl_ms.map(|n| n.to_string()));
    option("deadline", request.deadline_ms.map(|n| n.to_string()));
    option("schedule", request.schedule.map(|s| format!("{s:?}")));
    option("cond", request.conditions.as_ref().map(|c| format!("{c:?}")));
    option("parent", request.parent_job_id.as_ref().map(|p| p.chars().take(8).collect()));
    option("tag", request.tag.clone());
    option("group", request.chain_group_id.clone());
    text
}

pub fn input(input: &Input) -> String {
    match input {
        Input::Enqueue(r) => format!("Enqueue[{}]", request(r)),
        Input::EnqueueBatch(requests) => {
            let items: Vec<String> = requests.iter().map(request).collect();
            format!("Batch[{}]", items.join("; "))
        }
        Input::Cancel(c) => format!("Cancel[id={:?} tag={:?} group={:?}]", c.job_id.map(id), c.tag, c.chain_group_id),
        Input::Report(Report::Started { job_id, attempt, pid, .. }) => {
            format!("Started[{} att={attempt} pid={pid:?}]", id(*job_id))
        }
        Input::Report(Report::Finished { job_id, attempt, outcome }) => {
            let outcome = match outcome {
                Outcome::Succeeded { .. } => "succeeded".to_owned(),
                Outcome::Failed { kind, .. } => format!("failed:{}", kind.as_str()),
                Outcome::TimedOut => "timed_out".to_owned(),
            };
            format!("Finished[{} att={attempt} {outcome}]", id(*job_id))
        }
        other => format!("{other:?}"),
    }
}

pub fn reply(reply: &Reply) -> String {
    match reply {
        Reply::Enqueued(e) => {
            format!(
                "Enqueued[{} g{} {}{}]",
                id(e.job_id),
                e.generation,
                e.state,
                if e.deduplicated { " dedup" } else { "" }
            )
        }
        Reply::EnqueuedBatch(results) => {
            let items: Vec<String> = results
                .iter()
                .map(|e| {
                    format!(
                        "{} g{} {}{}",
                        id(e.job_id),
                        e.generation,
                        e.state,
                        if e.deduplicated { " dedup" } else { "" }
                    )
                })
                .collect();
            format!("Batch[{}]", items.join(", "))
        }
        Reply::Claimed(Some(claimed)) => format!("Claimed[{}]", job(claimed)),
        Reply::ClaimedBatch(claimed) => {
            format!("ClaimedBatch[{}]", claimed.iter().map(job).collect::<Vec<_>>().join(", "))
        }
        Reply::Rejected(Rejection::Validation(error)) => format!("Rejected[{}: {:?}]", error.field, error.kind),
        Reply::Rejected(other) => format!("Rejected[{other:?}]"),
        Reply::Purged { job_ids } => {
            format!("Purged[{}]", job_ids.iter().map(|j| id(*j)).collect::<Vec<_>>().join(","))
        }
        other => format!("{other:?}"),
    }
}

pub fn actions(actions: &[Action]) -> String {
    let items: Vec<String> = actions
        .iter()
        .map(|action| match action {
            Action::Spawn(j) => format!("spawn {} att={}", id(j.id), j.attempts),
            Action::Kill(order) => format!("kill {} att={} pid={:?}", id(order.job_id), order.attempt, order.pid),
        })
        .collect();
    items.join(", ")
}
