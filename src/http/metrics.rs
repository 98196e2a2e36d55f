//! `GET /metrics`: the node's counters in the Prometheus text format, encoded by the
//! `prometheus-client` crate (OpenMetrics text, which Prometheus scrapes).
//!
//! Every scrape reads a fresh snapshot: the runtime's per-kind traffic
//! ([`rasp_runtime::MetricsSnapshot`]) and named counters, the network counters and queue
//! depths of the node ([`NodeHandle::stats`], [`NodeHandle::queue_depths`]), the membership
//! view, and the replica's statistics ([`rasp_dataflow::replica::ReplicaStats`]).
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `rasp_messages_sent_total`, `rasp_messages_received_total` | `kind` | messages per kind (local and remote) |
//! | `rasp_message_bytes_sent_total`, `rasp_message_bytes_received_total` | `kind` | encoded payload bytes per kind to / from other nodes |
//! | `rasp_events_total` | `name`, `label` | counters the atoms keep ([`rasp_runtime::Ctx::count`]) |
//! | `rasp_peer_bytes_sent_total`, `rasp_peer_bytes_received_total`, `rasp_peer_dropped_total`, `rasp_peer_bad_frames_total` | `peer` | per peer, as the network runtime sees it |
//! | `rasp_dropped_total`, `rasp_unreachable_total` | | outbound messages dropped (queue full, stream broken, peer unreachable); messages to nodes of unknown address |
//! | `rasp_connected_peers`, `rasp_neighbours`, `rasp_passive_view` | | open connections, membership neighbours, HyParView passive view |
//! | `rasp_inbound_queue_depth`, `rasp_inbound_queue_capacity`, `rasp_outbound_queue_depth`, `rasp_outbound_queue_max_depth` | | the bounded queues |
//! | `rasp_var_size_bytes` | `var` | each held variable's encoded size |
//! | `rasp_var_bytes_sent_total`, `rasp_var_bytes_received_total` | `var` | replication payload per variable |
//! | `rasp_replica_state_messages_total`, `rasp_replica_delta_messages_total`, `rasp_replica_rejected_total`, `rasp_replica_buffer_overflows_total` | | replication messages and refusals |
//! | `rasp_replica_buffer_entries`, `rasp_replica_buffer_bytes` | | the delta buffer |
//! | `rasp_replica_lag_entries` | `peer` | convergence lag: buffer entries the neighbour has not acknowledged |
//! | `rasp_program_subscriptions` | | subscriptions in the dataflow program: one per open `/read` and `/watch`, plus the app's own |
//! | `rasp_http_streams_open` | | `/read` long-polls and `/watch` streams open now (at most [`super::MAX_STREAMS`]) |
//! | `rasp_http_watch_skipped_events_total` | | events dropped for slow watchers ([`super::feed`]: their feed coalesced to the latest value) |

use super::{membership_view, Api, ApiError, CALL_TIMEOUT};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rasp_dataflow::replica::ReplicaStats;
use rasp_runtime::net::{NetStats, NodeHandle, QueueDepths};
use rasp_runtime::{MetricsSnapshot, NodeId};
use std::collections::BTreeMap;

/// The content type of the answer (OpenMetrics text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What one scrape reads from the node.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// Runtime metrics.
    pub runtime: MetricsSnapshot,
    /// Network counters.
    pub net: NetStats,
    /// Queue depths.
    pub queues: QueueDepths,
    /// Open connections.
    pub connected: usize,
    /// Membership neighbours and passive view sizes.
    pub view: (usize, usize),
    /// Replica statistics, lag per neighbour, buffer entries and bytes, variable sizes.
    pub replica: Option<ReplicaScrape>,
    /// Long-polls and event streams of the HTTP API open now.
    pub streams_open: usize,
    /// Events slow watchers skipped (see [`super::feed`]).
    pub watch_skipped: u64,
}

/// The replica's part of a [`Scrape`].
#[derive(Clone, Debug, Default)]
pub struct ReplicaScrape {
    /// Its counters.
    pub stats: ReplicaStats,
    /// Unacknowledged entries per neighbour.
    pub lag: BTreeMap<NodeId, u64>,
    /// Delta-buffer entries.
    pub buffer_len: usize,
    /// Delta-buffer bytes.
    pub buffer_bytes: usize,
    /// Encoded size of each held variable.
    pub sizes: BTreeMap<String, usize>,
    /// Subscriptions registered in the program ([`rasp_dataflow::Program::subscriptions`]).
    pub subscriptions: usize,
}

/// Reads a [`Scrape`] from the node (`None` if it stopped).
pub async fn read(api_node: &NodeHandle, replica: Option<super::ReplicaAtom>) -> Option<Scrape> {
    let inside = api_node.call(move |h, p| {
        let view = membership_view(h).map_or((0, 0), |v| (v.neighbours.len(), v.passive.len()));
        let replica = replica.and_then(|r| {
            let mut out = None;
            (r.access)(h, r.id, &mut |rep| {
                let p = rep.program();
                let sizes = p
                    .held()
                    .into_iter()
                    .filter_map(|id| {
                        let n = p.state_dyn(&id).ok()?.encoded_size();
                        Some((id, n))
                    })
                    .collect();
                out = Some(ReplicaScrape {
                    stats: rep.stats().clone(),
                    lag: rep.lag(),
                    buffer_len: rep.buffer_len(),
                    buffer_bytes: rep.buffer_bytes(),
                    sizes,
                    subscriptions: p.subscriptions(),
                });
            });
            out
        });
        (h.metrics_snapshot(), p.connected().len(), view, replica)
    });
    let (runtime, connected, view, replica) =
        tokio::time::timeout(CALL_TIMEOUT, inside).await.ok()??;
    Some(Scrape {
        runtime,
        net: api_node.stats(),
        queues: api_node.queue_depths(),
        connected,
        view,
        replica,
        streams_open: 0,
        watch_skipped: 0,
    })
}

type Labels = Vec<(String, String)>;

fn counters(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    reg.register(name, help, f.clone());
    f
}

fn gauge(reg: &mut Registry, name: &str, help: &str, v: usize) {
    let g = Gauge::<i64>::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    reg.register(name, help, g);
}

fn counter(reg: &mut Registry, name: &str, help: &str, v: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(v);
    reg.register(name, help, c);
}

fn l(k: &str, v: impl ToString) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

/// Encodes a scrape as Prometheus (OpenMetrics) text.
pub fn encode_scrape(s: &Scrape) -> String {
    let mut reg = Registry::with_prefix("rasp");
    let sent = counters(&mut reg, "messages_sent", "Messages sent, per kind");
    let recv = counters(&mut reg, "messages_received", "Messages received, per kind");
    let bsent = counters(
        &mut reg,
        "message_bytes_sent",
        "Encoded payload bytes sent to other nodes, per kind",
    );
    let brecv = counters(
        &mut reg,
        "message_bytes_received",
        "Encoded payload bytes received from other nodes, per kind",
    );
    for (kind, k) in &s.runtime.kinds {
        sent.get_or_create(&l("kind", kind)).inc_by(k.msgs_sent);
        recv.get_or_create(&l("kind", kind)).inc_by(k.msgs_recv);
        bsent.get_or_create(&l("kind", kind)).inc_by(k.bytes_sent);
        brecv.get_or_create(&l("kind", kind)).inc_by(k.bytes_recv);
    }
    let events = counters(&mut reg, "events", "Counters kept by the atoms");
    for (key, v) in &s.runtime.counters {
        let (name, label) = match key.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (key.as_str(), ""),
        };
        events
            .get_or_create(&vec![
                ("name".to_string(), name.to_string()),
                ("label".to_string(), label.to_string()),
            ])
            .inc_by(*v);
    }
    let p_sent = counters(
        &mut reg,
        "peer_bytes_sent",
        "Payload bytes written, per peer",
    );
    let p_recv = counters(
        &mut reg,
        "peer_bytes_received",
        "Payload bytes read, per peer",
    );
    let p_drop = counters(
        &mut reg,
        "peer_dropped",
        "Outbound messages dropped, per peer",
    );
    let p_bad = counters(
        &mut reg,
        "peer_bad_frames",
        "Malformed or oversized frames received, per peer",
    );
    for (node, st) in &s.net.peers {
        let lab = l("peer", node.0);
        p_sent.get_or_create(&lab).inc_by(st.bytes_sent);
        p_recv.get_or_create(&lab).inc_by(st.bytes_received);
        p_drop.get_or_create(&lab).inc_by(st.dropped);
        p_bad.get_or_create(&lab).inc_by(st.bad_frames);
    }
    let total = s.net.total();
    counter(
        &mut reg,
        "dropped",
        "Outbound messages dropped (queue full, stream broken, peer unreachable)",
        total.dropped,
    );
    counter(
        &mut reg,
        "unreachable",
        "Messages to nodes with no known address",
        s.net.unreachable,
    );
    gauge(&mut reg, "connected_peers", "Open connections", s.connected);
    gauge(&mut reg, "neighbours", "Membership neighbours", s.view.0);
    gauge(
        &mut reg,
        "passive_view",
        "HyParView passive view size",
        s.view.1,
    );
    gauge(
        &mut reg,
        "inbound_queue_depth",
        "Events waiting for the atom executor",
        s.queues.inbound,
    );
    gauge(
        &mut reg,
        "inbound_queue_capacity",
        "Bound of the executor queue",
        s.queues.inbound_capacity,
    );
    gauge(
        &mut reg,
        "outbound_queue_depth",
        "Outbound messages queued, all peers",
        s.queues.outbound,
    );
    gauge(
        &mut reg,
        "outbound_queue_max_depth",
        "Longest per-peer outbound queue",
        s.queues.outbound_max,
    );
    gauge(
        &mut reg,
        "http_streams_open",
        "HTTP long-polls and event streams open now",
        s.streams_open,
    );
    counter(
        &mut reg,
        "http_watch_skipped_events",
        "Events dropped for slow watchers (their feed coalesced to the latest value)",
        s.watch_skipped,
    );
    if let Some(r) = &s.replica {
        let size = Family::<Labels, Gauge>::default();
        reg.register(
            "var_size_bytes",
            "Encoded size of each held variable",
            size.clone(),
        );
        for (id, n) in &r.sizes {
            size.get_or_create(&l("var", id))
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        let vs = counters(
            &mut reg,
            "var_bytes_sent",
            "Replication bytes sent, per variable",
        );
        for (id, n) in &r.stats.bytes_sent {
            vs.get_or_create(&l("var", id)).inc_by(*n);
        }
        let vr = counters(
            &mut reg,
            "var_bytes_received",
            "Replication bytes received, per variable",
        );
        for (id, n) in &r.stats.bytes_received {
            vr.get_or_create(&l("var", id)).inc_by(*n);
        }
        counter(
            &mut reg,
            "replica_state_messages",
            "Sync messages carrying whole states",
            r.stats.state_msgs,
        );
        counter(
            &mut reg,
            "replica_delta_messages",
            "Sync messages carrying deltas",
            r.stats.delta_msgs,
        );
        counter(
            &mut reg,
            "replica_rejected",
            "Received entries that did not decode or named a variable not held",
            r.stats.rejected,
        );
        counter(
            &mut reg,
            "replica_buffer_overflows",
            "Delta-buffer entries dropped because the buffer was full",
            r.stats.buffer_overflows,
        );
        gauge(
            &mut reg,
            "replica_buffer_entries",
            "Delta-buffer entries",
            r.buffer_len,
        );
        gauge(
            &mut reg,
            "replica_buffer_bytes",
            "Delta-buffer bytes",
            r.buffer_bytes,
        );
        gauge(
            &mut reg,
            "program_subscriptions",
            "Subscriptions in the dataflow program (one per open HTTP read and watch, plus the app's own)",
            r.subscriptions,
        );
        let lag = Family::<Labels, Gauge>::default();
        reg.register(
            "replica_lag_entries",
            "Convergence lag: delta-buffer entries the neighbour has not acknowledged",
            lag.clone(),
        );
        for (n, v) in &r.lag {
            lag.get_or_create(&l("peer", n.0))
                .set(i64::try_from(*v).unwrap_or(i64::MAX));
        }
    }
    let mut out = String::new();
    encode(&mut out, &reg).expect("writing to a String cannot fail");
    out
}

/// The `/metrics` handler.
pub(super) async fn scrape(State(api): State<Api>) -> Response {
    match read(&api.node, api.replica.clone()).await {
        Some(mut s) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            encode_scrape({
                s.streams_open = api.streams_open();
                s.watch_skipped = api.skipped.load(std::sync::atomic::Ordering::Relaxed);
                &s
            }),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node's atoms do not answer",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rasp_runtime::KindStats;

    #[test]
    fn a_scrape_encodes_every_family() {
        let mut s = Scrape::default();
        s.runtime.kinds.insert(
            "dataflow/sync".into(),
            KindStats {
                msgs_sent: 3,
                bytes_sent: 120,
                msgs_recv: 2,
                bytes_recv: 80,
            },
        );
        s.runtime.counters.insert("net.dropped{x}".into(), 4);
        s.connected = 2;
        let mut r = ReplicaScrape::default();
        r.sizes.insert("cart".into(), 17);
        r.lag.insert(NodeId(9), 5);
        r.subscriptions = 3;
        s.replica = Some(r);
        s.streams_open = 2;
        s.watch_skipped = 7;
        let text = encode_scrape(&s);
        for want in [
            "rasp_messages_sent_total{kind=\"dataflow/sync\"} 3",
            "rasp_message_bytes_received_total{kind=\"dataflow/sync\"} 80",
            "rasp_events_total{name=\"net.dropped\",label=\"x\"} 4",
            "rasp_connected_peers 2",
            "rasp_var_size_bytes{var=\"cart\"} 17",
            "rasp_replica_lag_entries{peer=\"9\"} 5",
            "rasp_program_subscriptions 3",
            "rasp_http_streams_open 2",
            "rasp_http_watch_skipped_events_total 7",
        ] {
            assert!(text.contains(want), "{want} missing in\n{text}");
        }
    }
}
