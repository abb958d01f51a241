//! What the server says about itself: the probes (`/livez`, `/readyz`), `/status` and
//! `/metrics`, and the answer to everything while the log is replayed. None of these touches a
//! file: every number comes from memory (the store's tallies, the writer's status, the
//! metrics' counters), so they answer while the disk stalls.

use super::{Response, Serving};
use crate::json;
use crate::metrics::DiskCall;
use crate::store::Store;

/// The answer to any request while the log is being replayed at startup: `/livez` is 200,
/// `/readyz` 503 `replaying`, everything else 503 with `Retry-After: 1`.
pub fn while_replaying(method: &str, path: &str) -> Response {
    match (method, path) {
        ("GET" | "HEAD", "/livez") => live(),
        ("GET" | "HEAD", "/readyz") => not_ready("replaying"),
        _ => {
            let message = "the server is replaying its log and serves nothing else yet; try \
                           again in a second (GET /readyz says when it is ready)";
            let mut response = Response::error(503, message);
            response.headers.push(("Retry-After", "1".to_string()));
            response
        }
    }
}

/// `GET /readyz`: 200 while the log takes writes and no stop signal came; else 503 with the
/// reason (`log_failed`, `stopping`), so that a load balancer sends traffic elsewhere.
pub(super) fn readyz(store: &Store, stopping: bool) -> Response {
    match () {
        _ if store.log_failed() => not_ready("log_failed"),
        _ if stopping => not_ready("stopping"),
        _ => Response::json(200, r#"{"ready":true}"#.into()),
    }
}

/// `GET /livez`: the loop runs, which is all it says.
pub(super) fn live() -> Response {
    Response::json(200, r#"{"live":true}"#.into())
}

/// `/readyz` when not ready, with the reason (a fixed word, never client text).
fn not_ready(reason: &str) -> Response {
    Response::json(503, format!(r#"{{"ready":false,"reason":"{reason}"}}"#))
}

/// `GET /status`: readiness, how far the log is written and synced, its files, and what waits
/// for the disk.
pub(super) fn status(store: &Store, serving: Serving) -> Response {
    let compaction = serving.compaction;
    let error = match &compaction.last_error {
        Some(e) => {
            let mut text = String::new();
            json::write_string(&mut text, &crate::error::for_client(e));
            text
        }
        None => "null".to_string(),
    };
    let (last, synced) = (store.written_seq(), store.synced_seq());
    let (queued_writes, queued_bytes) = store.queued();
    let (memory, limit) = store.memory();
    let max_memory = limit.map_or_else(|| "null".to_string(), |l| l.to_string());
    let running = |call| match crate::metrics::METRICS.running_for(call) {
        Some(running) => format!("{:.3}", running.as_secs_f64()),
        None => "null".to_string(),
    };
    let (write, fsync) = (running(DiskCall::Write), running(DiskCall::Fsync));
    match () {
        _ if !store.log_failed() => Response::json(
            200,
            format!(
                "{{\"ready\":true,\"last_seq\":{last},\"synced_seq\":{synced},\
                 \"disk_bytes\":{},\"reserved_bytes\":{},\"live_bytes\":{},\"compacting\":{},\"compactions\":{},\
                 \"last_compaction_error\":{error},\"write_running_seconds\":{write},\
                 \"fsync_running_seconds\":{fsync},\
                 \"queued_writes\":{queued_writes},\"queued_bytes\":{queued_bytes},\
                 \"waiting_writes\":{},\"acks_wait_for_fsync\":{},\"memory_bytes\":{memory},\
                 \"max_memory_bytes\":{max_memory}}}",
                store.disk_bytes(),
                store.reserved_bytes(),
                store.live_bytes(),
                compaction.compacting,
                compaction.completed,
                serving.waiting_writes,
                serving.acks_wait_for_fsync,
            ),
        ),
        _ => Response::json(
            503,
            "{\"ready\":false,\"error\":\"the log has stopped taking writes; restart the server\"}"
                .to_string(),
        ),
    }
}

/// `GET /metrics`: the counters of [`crate::metrics::METRICS`] and what the store says now.
pub(super) fn metrics(store: &Store, serving: Serving) -> Response {
    let (queued_writes, queued_bytes) = store.queued();
    let (last_seq, synced_seq) = (store.written_seq(), store.synced_seq());
    let gauges = crate::metrics::Gauges {
        keys: store.len() as u64,
        live_bytes: store.live_bytes(),
        disk_bytes: store.disk_bytes(),
        last_seq,
        synced_seq,
        ready: !store.log_failed() && !serving.stopping,
        queued_writes: queued_writes as u64,
        queued_bytes,
        waiting_writes: serving.waiting_writes as u64,
        acks_wait_for_fsync: serving.acks_wait_for_fsync,
        memory_bytes: store.memory().0,
        max_memory_bytes: store.memory().1.unwrap_or(0),
        followers: store.feed().map_or(0, |feed| feed.followers() as u64),
        followers_cut: store.feed().map_or(0, crate::feed::Feed::cut_count),
        watching_reads: serving.watching_reads as u64,
        expiring_keys: store.expiring_keys() as u64,
        expired_keys: store.expired_total(),
    };
    let mut response = Response::json(200, crate::metrics::text::render(&gauges));
    response.content_type = crate::metrics::text::CONTENT_TYPE;
    response
}
