//! `/status`: what the server is doing now, as php-fpm's status page shows its pool. One
//! [`Status`] is taken from the dispatcher and the metrics, then rendered as text (the
//! default), `?json` or `?html`; `?full` adds every request in flight. (`?openmetrics` is
//! `/metrics`, which the admin listener answers without taking a status.)

use super::metrics::Metrics;
use crate::dispatch::{Dispatcher, LiveRequest};
use crate::request::Outcome;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

/// What a request in flight is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// A thread runs its guest.
    Running,
    /// Its guest waits in a host call: sleeping, reading its body, writing.
    InHostCall,
    /// Its response is complete (finish-request) and its guest works on.
    FinishedEarly,
    /// Its client left, and its guest ignores user aborts and works on.
    IgnoringAbort,
}

impl State {
    /// The state of `request` now.
    fn of(request: &LiveRequest) -> Self {
        let state = &request.state;
        if state.is_aborted() && state.ignores_user_abort() {
            State::IgnoringAbort
        } else if state.responded() {
            State::FinishedEarly
        } else if state.in_guest() {
            State::Running
        } else {
            State::InHostCall
        }
    }

    /// Its name in the JSON and OpenMetrics views.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::InHostCall => "in-host-call",
            State::FinishedEarly => "finished-early",
            State::IgnoringAbort => "ignoring-abort",
        }
    }

    /// Its name in the text and HTML views.
    fn words(self) -> &'static str {
        match self {
            State::Running => "running",
            State::InHostCall => "in a host call",
            State::FinishedEarly => "finished early",
            State::IgnoringAbort => "ignoring an abort",
        }
    }
}

/// What the text and HTML views show of each request in flight (`?full`), as php-fpm names it.
const REQUEST_COLUMNS: [&str; 6] = ["request id", "route", "method", "request URI", "age", "state"];

/// One request in flight.
#[derive(Debug)]
struct InFlight {
    id: u64,
    request: LiveRequest,
    age: Duration,
    state: State,
}

/// The server's status at one moment.
#[derive(Debug)]
pub struct Status {
    started: SystemTime,
    uptime: Duration,
    generation: u64,
    reloads_ok: u64,
    reloads_failed: u64,
    accepted: u64,
    open: i64,
    instances_in_use: usize,
    max_instances: u32,
    max_instances_reached: u64,
    slow_requests: u64,
    outcomes: Vec<(Outcome, u64)>,
    in_flight: Vec<InFlight>,
}

/// How `/status` renders, from its query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Html,
}

impl Format {
    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; charset=utf-8",
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

impl Status {
    /// The status now.
    pub fn take(dispatcher: &Dispatcher, metrics: &Metrics) -> Self {
        let generation = dispatcher.generation();
        let max_instances = generation.settings.max_instances;
        let (accepted, open) = metrics.connections();
        let (reloads_ok, reloads_failed) = metrics.reloads();
        let now = Instant::now();
        let mut in_flight: Vec<InFlight> = dispatcher
            .live_requests()
            .into_iter()
            .map(|(id, request)| InFlight { id, age: now.saturating_duration_since(request.since), state: State::of(&request), request })
            .collect();
        in_flight.sort_by_key(|request| request.id);
        Self {
            started: metrics.started(),
            uptime: SystemTime::now().duration_since(metrics.started()).unwrap_or_default(),
            generation: generation.number,
            reloads_ok,
            reloads_failed,
            accepted,
            open,
            instances_in_use: (max_instances as usize).saturating_sub(generation.instances().available_permits()),
            max_instances,
            max_instances_reached: metrics.max_instances_reached_total(),
            slow_requests: metrics.slow_requests_total(),
            outcomes: Outcome::ALL.iter().map(|&outcome| (outcome, metrics.outcome_total(outcome))).collect(),
            in_flight,
        }
    }

    /// Requests in flight by route, then by state.
    fn by_route(&self) -> BTreeMap<&str, BTreeMap<State, usize>> {
        let mut routes: BTreeMap<&str, BTreeMap<State, usize>> = BTreeMap::new();
        for request in &self.in_flight {
            *routes.entry(&request.request.route).or_default().entry(request.state).or_default() += 1;
        }
        routes
    }

    /// The status in `format`; `full` adds every request in flight.
    pub fn render(&self, format: Format, full: bool) -> String {
        match format {
            Format::Text => self.text(full),
            Format::Json => self.json(full),
            Format::Html => self.html(full),
        }
    }

    /// The summary rows: label, value.
    fn rows(&self) -> Vec<(String, String)> {
        let mut rows = vec![
            ("start time".to_owned(), httpdate::fmt_http_date(self.started)),
            ("uptime".to_owned(), format!("{} s", self.uptime.as_secs())),
            ("generation".to_owned(), self.generation.to_string()),
            ("reloads".to_owned(), format!("{} ok, {} failed", self.reloads_ok, self.reloads_failed)),
            ("accepted connections".to_owned(), self.accepted.to_string()),
            ("open connections".to_owned(), self.open.to_string()),
            ("instances in use".to_owned(), format!("{} of {}", self.instances_in_use, self.max_instances)),
            ("max instances reached".to_owned(), self.max_instances_reached.to_string()),
            ("slow requests".to_owned(), self.slow_requests.to_string()),
            ("requests in flight".to_owned(), self.in_flight.len().to_string()),
        ];
        for (route, states) in self.by_route() {
            let states: Vec<String> = states.iter().map(|(state, count)| format!("{count} {}", state.words())).collect();
            rows.push((format!("  on {route}"), states.join(", ")));
        }
        for (outcome, count) in &self.outcomes {
            rows.push((format!("requests {}", outcome.as_str()), count.to_string()));
        }
        rows
    }

    /// The values of one request in flight, by [`REQUEST_COLUMNS`].
    fn request_values(request: &InFlight) -> [String; REQUEST_COLUMNS.len()] {
        [
            request.id.to_string(),
            request.request.route.to_string(),
            request.request.method.clone(),
            request.request.target.clone(),
            format!("{} ms", request.age.as_millis()),
            request.state.words().to_owned(),
        ]
    }

    fn text(&self, full: bool) -> String {
        let mut text = String::new();
        for (label, value) in self.rows() {
            let _ = writeln!(text, "{:<28}{value}", format!("{label}:"));
        }
        if full {
            for request in &self.in_flight {
                text += "\n************************\n";
                for (label, value) in REQUEST_COLUMNS.iter().zip(Self::request_values(request)) {
                    let _ = writeln!(text, "{:<28}{value}", format!("{label}:"));
                }
            }
        }
        text
    }

    fn json(&self, full: bool) -> String {
        let by_route: serde_json::Map<String, serde_json::Value> = self
            .by_route()
            .into_iter()
            .map(|(route, states)| {
                (route.to_owned(), states.into_iter().map(|(state, count)| (state.as_str().to_owned(), json!(count))).collect())
            })
            .collect();
        let outcomes: serde_json::Map<String, serde_json::Value> =
            self.outcomes.iter().map(|(outcome, count)| (outcome.as_str().to_owned(), json!(count))).collect();
        let mut status = json!({
            "start_time": self.started.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_secs()),
            "uptime_seconds": self.uptime.as_secs(),
            "generation": self.generation,
            "reloads": { "ok": self.reloads_ok, "failed": self.reloads_failed },
            "accepted_connections": self.accepted,
            "open_connections": self.open,
            "instances_in_use": self.instances_in_use,
            "max_instances": self.max_instances,
            "max_instances_reached": self.max_instances_reached,
            "slow_requests": self.slow_requests,
            "requests_in_flight": self.in_flight.len(),
            "in_flight_by_route": by_route,
            "requests_by_outcome": outcomes,
        });
        if full {
            status["requests"] = self
                .in_flight
                .iter()
                .map(|request| {
                    json!({
                        "id": request.id,
                        "route": &*request.request.route,
                        "method": request.request.method,
                        "uri": request.request.target,
                        "age_ms": u64::try_from(request.age.as_millis()).unwrap_or(u64::MAX),
                        "state": request.state.as_str(),
                    })
                })
                .collect();
        }
        status.to_string()
    }

    fn html(&self, full: bool) -> String {
        let mut html = String::from(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tether status</title>\n<style>\
             body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}\
             th,td{border:1px solid #ccc;padding:.3em .8em;text-align:left}th{background:#eee}</style></head>\n\
             <body><h1>Tether status</h1>\n<table id=\"summary\">\n",
        );
        for (label, value) in self.rows() {
            let _ = writeln!(html, "<tr><th>{}</th><td>{}</td></tr>", escape(&label), escape(&value));
        }
        html += "</table>\n";
        if full {
            html += "<h2>Requests in flight</h2>\n<table id=\"requests\">\n<tr>";
            for label in REQUEST_COLUMNS {
                let _ = write!(html, "<th>{label}</th>");
            }
            html += "</tr>\n";
            for request in &self.in_flight {
                html += "<tr>";
                for value in Self::request_values(request) {
                    let _ = write!(html, "<td>{}</td>", escape(&value));
                }
                html += "</tr>\n";
            }
            html += "</table>\n";
        }
        html += "</body></html>\n";
        html
    }
}

/// `text` with HTML's special characters escaped.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped += "&amp;",
            '<' => escaped += "&lt;",
            '>' => escaped += "&gt;",
            '"' => escaped += "&quot;",
            '\'' => escaped += "&#39;",
            c => escaped.push(c),
        }
    }
    escaped
}
