//! The manifest's TOML schema as serde reads it: every table and field, their defaults, and the
//! checks that belong to a single value (units, ranges, octal modes, non-zero counts).
//!
//! Every table denies unknown fields, so a misspelt field is an error rather than a silent
//! default. What needs more than one value or the file system (a component that must exist, a
//! path that must be unique) is checked afterwards, in the parent module.

use super::{
    DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_POOL_RESIDENT, DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_KEEP_RESIDENT,
    DEFAULT_MAX_BODY_SIZE, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_EXECUTION_TIME, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_INSTANCES, DEFAULT_MAX_MEMORY, DEFAULT_OUTPUT_BUFFER, DEFAULT_SEND_TIMEOUT, DEFAULT_SHUTDOWN_GRACE, DEFAULT_SOCKET_MODE,
    GuestStart, MAX_GUEST_MEMORY, MAX_OUTPUT_BUFFER, MAX_SOCKET_MODE, RouteBy,
};
use crate::request::AbortDetection;
use crate::runtime::World;
use crate::units::{parse_duration, parse_size};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// The whole file: `[server]` and the `[[route]]` array, both optional to serde (a manifest
/// without routes is rejected later, with its own message).
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawManifest {
    pub(super) server: RawServer,
    #[serde(rename = "route")]
    pub(super) routes: Vec<Spanned<RawRoute>>,
}

/// `[server]`. A missing field takes its value from `RawServer::default`.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Vec<Spanned<String>>,
    pub(super) fastcgi: Vec<Spanned<String>>,
    pub(super) admin: Option<Spanned<String>>,
    #[serde(deserialize_with = "socket_mode")]
    pub(super) socket_mode: u32,
    pub(super) fastcgi_route_by: RouteBy,
    #[serde(deserialize_with = "at_least_one")]
    pub(super) max_connections: usize,
    #[serde(deserialize_with = "at_least_one")]
    pub(super) max_instances: u32,
    pub(super) cache_dir: Option<PathBuf>,
    pub(super) pooling: bool,
    #[serde(deserialize_with = "size")]
    pub(super) keep_resident: u64,
    #[serde(deserialize_with = "size")]
    pub(super) idle_pool_resident: u64,
    #[serde(deserialize_with = "duration")]
    pub(super) header_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub(super) keep_alive_timeout: Duration,
    #[serde(deserialize_with = "positive_duration")]
    pub(super) body_timeout: Duration,
    #[serde(deserialize_with = "positive_duration")]
    pub(super) send_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub(super) shutdown_grace: Duration,
    #[serde(deserialize_with = "size")]
    pub(super) max_header_bytes: u64,
    pub(super) max_headers: usize,
    #[serde(deserialize_with = "at_least_one")]
    pub(super) io_threads: usize,
    #[serde(deserialize_with = "at_least_one")]
    pub(super) guest_threads: usize,
    pub(super) guests_start_on: GuestStart,
}

impl Default for RawServer {
    /// The server settings of a manifest that sets none: no listeners (the command line may add
    /// them), the `DEFAULT_*` limits, one thread of each kind per core.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        RawServer {
            listen: Vec::new(),
            fastcgi: Vec::new(),
            admin: None,
            socket_mode: DEFAULT_SOCKET_MODE,
            fastcgi_route_by: RouteBy::RequestUri,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_instances: DEFAULT_MAX_INSTANCES,
            cache_dir: None,
            pooling: true,
            keep_resident: DEFAULT_KEEP_RESIDENT as u64,
            idle_pool_resident: DEFAULT_IDLE_POOL_RESIDENT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            io_threads: cores,
            guest_threads: cores,
            guests_start_on: GuestStart::Auto,
        }
    }
}

/// What a client half-close means on a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum HalfClose {
    /// An abort, as nginx treats it.
    Abort,
    /// Not an abort: the request goes on; a full close then shows when a write draws a reset.
    Continue,
}

/// `[[route]]`. A missing field takes its value from `RawRoute::default`; `path` and
/// `component` have none, so they are options here and required by the parent module.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) path: Option<Spanned<String>>,
    pub(super) component: Option<Spanned<String>>,
    pub(super) world: Option<Spanned<World>>,
    #[serde(deserialize_with = "output_buffer")]
    pub(super) output_buffer: u64,
    pub(super) abort_detection: AbortDetection,
    pub(super) half_close: HalfClose,
    pub(super) ignore_user_abort: bool,
    #[serde(deserialize_with = "duration")]
    pub(super) max_execution_time: Duration,
    #[serde(deserialize_with = "duration")]
    pub(super) request_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub(super) slowlog_timeout: Duration,
    #[serde(deserialize_with = "guest_memory")]
    pub(super) max_memory: u64,
    #[serde(deserialize_with = "size")]
    pub(super) max_body_size: u64,
    pub(super) env: BTreeMap<Spanned<String>, String>,
    pub(super) preopen: Vec<RawPreopen>,
    pub(super) allowed_outbound_hosts: Vec<Spanned<String>>,
    pub(super) build: Option<RawBuild>,
}

impl Default for RawRoute {
    /// A route's settings when the manifest sets none: the world the component exports, PHP's
    /// defaults (output buffering, time and memory limits, body size, user aborts not
    /// ignored), prompt abort detection, no wall-clock limit, no environment, no directories and
    /// no outbound hosts.
    fn default() -> Self {
        RawRoute {
            path: None,
            component: None,
            world: None,
            output_buffer: DEFAULT_OUTPUT_BUFFER,
            abort_detection: AbortDetection::Prompt,
            half_close: HalfClose::Abort,
            ignore_user_abort: false,
            max_execution_time: DEFAULT_MAX_EXECUTION_TIME,
            // Zero is no limit: php-fpm's `request_terminate_timeout` is off by default.
            request_timeout: Duration::ZERO,
            // Zero is off, as php-fpm's `request_slowlog_timeout`.
            slowlog_timeout: Duration::ZERO,
            max_memory: DEFAULT_MAX_MEMORY,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            env: BTreeMap::new(),
            preopen: Vec::new(),
            allowed_outbound_hosts: Vec::new(),
            build: None,
        }
    }
}

/// `[[route.preopen]]`: a directory granted to the route's guest, read-only unless `writable`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPreopen {
    pub(super) host: Spanned<String>,
    pub(super) guest: String,
    #[serde(default)]
    pub(super) writable: bool,
}

/// `[route.build]`: how `tether build` makes the route's component (Spin's `[component.build]`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBuild {
    pub(super) command: String,
    pub(super) workdir: Option<Spanned<String>>,
}

/// A count that must not be zero (threads, connections, instances).
fn at_least_one<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default + PartialEq>(de: D) -> Result<T, D::Error> {
    let n = T::deserialize(de)?;
    if n == T::default() {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

/// A number, or a string to parse with `parse`.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

/// A size in bytes: a number, or text with a unit (`64KiB`, see `units::parse_size`).
fn size<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    match NumberOrText::deserialize(de)? {
        NumberOrText::Number(n) => Ok(n),
        NumberOrText::Text(text) => parse_size(&text).map_err(serde::de::Error::custom),
    }
}

/// A size in bytes of at most `max`.
fn bounded_size<'de, D: Deserializer<'de>>(de: D, max: u64) -> Result<u64, D::Error> {
    let n = size(de)?;
    if n > max {
        return Err(serde::de::Error::custom(format!("{n} bytes is more than the maximum of {max}")));
    }
    Ok(n)
}

/// A route's `output_buffer`, at most `MAX_OUTPUT_BUFFER`.
fn output_buffer<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    bounded_size(de, MAX_OUTPUT_BUFFER)
}

/// A route's `max_memory`, at most `MAX_GUEST_MEMORY`.
fn guest_memory<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    bounded_size(de, MAX_GUEST_MEMORY)
}

/// A duration: a number of seconds, or text with a unit (`500ms`, see `units::parse_duration`).
fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    match NumberOrText::deserialize(de)? {
        NumberOrText::Number(n) => Ok(Duration::from_secs(n)),
        NumberOrText::Text(text) => parse_duration(&text).map_err(serde::de::Error::custom),
    }
}

/// A duration that must not be zero (a zero timeout would fire at once).
fn positive_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let duration = duration(de)?;
    if duration.is_zero() {
        return Err(serde::de::Error::custom("must be more than 0"));
    }
    Ok(duration)
}

/// Permission bits, which TOML writes in octal (`0o660`); a decimal `660` would be another mode.
fn socket_mode<'de, D: Deserializer<'de>>(de: D) -> Result<u32, D::Error> {
    let mode = u32::deserialize(de)?;
    if mode > MAX_SOCKET_MODE {
        return Err(serde::de::Error::custom(format!("{mode} is not a file mode; write it in octal, like 0o660")));
    }
    Ok(mode)
}
