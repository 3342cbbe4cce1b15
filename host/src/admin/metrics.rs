//! The server's counters, gauges and histograms, kept with the prometheus-client crate and
//! encoded as OpenMetrics text for `/metrics`; `/status` reads the same values. The dispatcher
//! records every request as it logs its access line, the server every connection and reload.
//! The names are the README's ("Status page and metrics").

use crate::request::{AccessRecord, Outcome, Protocol};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Request durations: 100 µs to about 105 s, doubling.
const DURATION_BUCKETS: (f64, f64, u16) = (100e-6, 2.0, 21);
/// Abort latencies: 10 µs to about 0.33 s, doubling.
const ABORT_LATENCY_BUCKETS: (f64, f64, u16) = (10e-6, 2.0, 16);

/// A route's path prefix as a label value, shared with the route rather than copied per request.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RouteLabel(pub Arc<str>);

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, &self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: RouteLabel,
    protocol: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: RouteLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// Everything `/metrics` and `/status` report, updated as the server runs.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily<RouteLabels>,
    abort_latencies: HistogramFamily<RouteLabels>,
    connections_open: Family<ProtocolLabels, Gauge>,
    connections_accepted: Family<ProtocolLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    slow_requests: Family<RouteLabels, Counter>,
    slow_total: Counter,
    max_instances_reached: Counter,
    /// Requests by outcome over every route and protocol, for `/status`.
    outcomes: [AtomicU64; Outcome::ALL.len()],
    /// When the server started, as a Unix time.
    started: SystemTime,
}

/// A histogram with exponential buckets: the first bound, the factor, how many.
fn exponential((start, factor, length): (f64, f64, u16)) -> Histogram {
    Histogram::new(exponential_buckets(start, factor, length))
}

fn duration_histogram() -> Histogram {
    exponential(DURATION_BUCKETS)
}

fn abort_latency_histogram() -> Histogram {
    exponential(ABORT_LATENCY_BUCKETS)
}

impl Default for Metrics {
    /// Fresh metrics, all zero, for a server starting now.
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tether");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests that ended, by route, protocol and outcome", requests.clone());
        let durations: HistogramFamily<RouteLabels> = Family::new_with_constructor(duration_histogram);
        registry.register("request_duration_seconds", "From the request head's arrival to the end of its guest", durations.clone());
        let abort_latencies: HistogramFamily<RouteLabels> = Family::new_with_constructor(abort_latency_histogram);
        registry.register(
            "abort_latency_seconds",
            "From the host seeing the client leave to the guest being stopped",
            abort_latencies.clone(),
        );
        let connections_open = Family::<ProtocolLabels, Gauge>::default();
        registry.register("connections_open", "Connections open now", connections_open.clone());
        let connections_accepted = Family::<ProtocolLabels, Counter>::default();
        registry.register("connections_accepted", "Connections accepted", connections_accepted.clone());
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register("reloads", "Reloads (SIGHUP), by result: ok or failed", reloads.clone());
        let slow_requests = Family::<RouteLabels, Counter>::default();
        registry.register("slow_requests", "Requests still running past their route's slowlog_timeout", slow_requests.clone());
        let max_instances_reached = Counter::default();
        registry.register(
            "max_instances_reached",
            "Requests refused with 503 because every instance (max_instances) stayed busy",
            max_instances_reached.clone(),
        );
        let started = SystemTime::now();
        let start_time = Gauge::<f64, AtomicU64>::default();
        start_time.set(started.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64()));
        registry.register("start_time_seconds", "When the server started, in seconds since the Unix epoch", start_time);
        Self {
            registry,
            requests,
            durations,
            abort_latencies,
            connections_open,
            connections_accepted,
            reloads,
            slow_requests,
            slow_total: Counter::default(),
            max_instances_reached,
            outcomes: Default::default(),
            started,
        }
    }
}

impl Metrics {
    /// Records a request that ended, from its access record; `route` is its route's prefix
    /// (none for a request refused before routing).
    pub fn request_ended(&self, route: Option<&Arc<str>>, record: &AccessRecord<'_>) {
        self.outcomes[record.outcome as usize].fetch_add(1, Ordering::Relaxed);
        let route = RouteLabel(route.cloned().unwrap_or_else(|| Arc::from("")));
        let labels = RequestLabels { route: route.clone(), protocol: record.protocol.as_str(), outcome: record.outcome.as_str() };
        self.requests.get_or_create(&labels).inc();
        let route = RouteLabels { route };
        self.durations.get_or_create(&route).observe(record.duration.as_secs_f64());
        if let Some(latency) = record.abort_latency {
            self.abort_latencies.get_or_create(&route).observe(latency.as_secs_f64());
        }
    }

    /// A request on `route` still running past its `slowlog_timeout`.
    pub fn slow_request(&self, route: &Arc<str>) {
        self.slow_requests.get_or_create(&RouteLabels { route: RouteLabel(route.clone()) }).inc();
        self.slow_total.inc();
    }

    /// Slow requests, over every route.
    pub fn slow_requests_total(&self) -> u64 {
        self.slow_total.get()
    }

    /// A refusal for want of an instance.
    pub fn max_instances_reached(&self) {
        self.max_instances_reached.inc();
    }

    /// A connection accepted; the guard it returns counts it open until dropped.
    pub fn connection_opened(self: &Arc<Self>, protocol: Protocol) -> OpenConnection {
        let labels = ProtocolLabels { protocol: protocol.as_str() };
        self.connections_accepted.get_or_create(&labels).inc();
        self.connections_open.get_or_create(&labels).inc();
        OpenConnection { metrics: self.clone(), protocol }
    }

    /// A reload that ended, well or not.
    pub fn reloaded(&self, ok: bool) {
        self.reloads.get_or_create(&ResultLabels { result: if ok { "ok" } else { "failed" } }).inc();
    }

    /// Every metric, as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    /// Requests that ended with `outcome`, over every route.
    pub fn outcome_total(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome as usize].load(Ordering::Relaxed)
    }

    /// Connections accepted and open now, over every listener.
    pub fn connections(&self) -> (u64, i64) {
        let protocols = [Protocol::Http, Protocol::FastCgi].map(|protocol| ProtocolLabels { protocol: protocol.as_str() });
        let accepted = protocols.iter().map(|labels| self.connections_accepted.get_or_create(labels).get()).sum();
        let open = protocols.iter().map(|labels| self.connections_open.get_or_create(labels).get()).sum();
        (accepted, open)
    }

    /// Reloads that succeeded and that failed.
    pub fn reloads(&self) -> (u64, u64) {
        let count = |result| self.reloads.get_or_create(&ResultLabels { result }).get();
        (count("ok"), count("failed"))
    }

    /// Refusals for want of an instance.
    pub fn max_instances_reached_total(&self) -> u64 {
        self.max_instances_reached.get()
    }

    /// When the server started.
    pub fn started(&self) -> SystemTime {
        self.started
    }
}

/// Counts a connection open until dropped.
#[derive(Debug)]
pub struct OpenConnection {
    metrics: Arc<Metrics>,
    protocol: Protocol,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.connections_open.get_or_create(&ProtocolLabels { protocol: self.protocol.as_str() }).dec();
    }
}
