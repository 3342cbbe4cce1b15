//! The TOML manifest: listeners, server limits, and routes (path prefix → component, with the
//! route's output buffer, abort detection, time and memory limits, and sandbox grants).
//!
//! Parsing is strict (`deny_unknown_fields`) and every error names the file, the line and the
//! field, whether TOML rejected it or a later check did (a missing component, a duplicate path).

use crate::request::AbortDetection;
use crate::units::{parse_duration, parse_size};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use toml::Spanned;

/// Largest `output_buffer` a route may set; the buffer lives in host memory per request.
pub const MAX_OUTPUT_BUFFER: u64 = 16 << 20;
/// Largest `max_memory`: a wasm32 linear memory cannot exceed 4 GiB.
pub const MAX_GUEST_MEMORY: u64 = 4 << 30;
/// Default `output_buffer`, PHP's `output_buffering=4096`.
pub const DEFAULT_OUTPUT_BUFFER: u64 = 4096;
/// Default `max_execution_time`, PHP's 30 seconds.
pub const DEFAULT_MAX_EXECUTION_TIME: Duration = Duration::from_secs(30);
/// Default `max_memory`, PHP's `memory_limit=128M`.
pub const DEFAULT_MAX_MEMORY: u64 = 128 << 20;
/// Default `max_body_size`, PHP's `post_max_size=8M`.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 8 << 20;
/// Default `max_connections`: open client connections; beyond it, new ones wait in the backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default `max_instances`: guests alive at once (the instance pool); beyond it, 503.
pub const DEFAULT_MAX_INSTANCES: u32 = 1_000;
/// Default `keep_resident`: per used pool slot, this much of its memory, table and stack each
/// stays resident between requests (see `runtime::EngineLimits::keep_resident`).
pub const DEFAULT_KEEP_RESIDENT: usize = 64 << 10;
/// Default `idle_pool_resident`: once the server is idle, the most memory the instance pool may
/// keep resident in unused slots (what `keep_resident` left behind) before it is given back.
/// About a thousand slots' worth: a server whose concurrency stays below that never reloads.
pub const DEFAULT_IDLE_POOL_RESIDENT: u64 = 32 << 20;
/// Default `header_timeout`: how long a client may take to send a request head.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `keep_alive_timeout`: how long an idle keep-alive connection stays open (nginx's).
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// Default `body_timeout`: how long a request body may stall while the guest waits for it
/// (nginx's `client_body_timeout`). A client silent for that long is treated as gone, so that
/// stalled uploads cannot hold the instance pool.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `send_timeout`: how long a response write may make no progress (nginx's
/// `send_timeout`). A client that stops reading for that long is treated as gone, so that it
/// cannot keep a guest blocked in a flush.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `shutdown_grace`: how long running requests may take to finish once the server was
/// told to stop (php-fpm's `process_control_timeout` is off by default, waiting for ever).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// The largest `fastcgi_socket_mode`: permission bits only.
const MAX_SOCKET_MODE: u32 = 0o777;
/// Default `max_header_bytes`: the request line plus headers.
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 16 << 10;
/// Default `max_headers`: number of request header fields.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// The scheme of components compiled into the binary (the example guests).
pub const BUILTIN_SCHEME: &str = "builtin:";

/// A manifest problem, located as precisely as the input allows.
#[derive(Debug, Error)]
pub struct ManifestError {
    /// The manifest file (or `<built-in>`).
    pub file: String,
    /// 1-based line and column, when known.
    pub location: Option<(usize, usize)>,
    /// The offending field, for example `route[2].component`.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.location {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ":")?;
        if let Some(field) = &self.field {
            write!(f, " field `{field}`:")?;
        }
        write!(f, " {}", self.message)
    }
}

/// Where a manifest came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A file; relative paths inside resolve against its directory.
    File(PathBuf),
    /// The example manifest compiled into the binary.
    Builtin,
}

impl Origin {
    fn name(&self) -> String {
        match self {
            Origin::File(path) => path.display().to_string(),
            Origin::Builtin => "<built-in example manifest>".to_owned(),
        }
    }
}

/// A listening address: `HOST:PORT` or `unix:/path/to.sock`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl std::str::FromStr for ListenAddr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("`unix:` needs a socket path".to_owned());
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        text.parse().map(ListenAddr::Tcp).map_err(|_| format!("`{text}` is not an address such as 127.0.0.1:8080 or unix:/run/tether.sock"))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Server-wide settings (`[server]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    /// HTTP/1.1 listeners.
    pub listen: Vec<ListenAddr>,
    /// FastCGI listeners.
    pub fastcgi: Vec<ListenAddr>,
    /// Permission bits of FastCGI Unix socket files (php-fpm's `listen.mode`).
    pub fastcgi_socket_mode: u32,
    /// How FastCGI requests pick a route: by `REQUEST_URI` or by `SCRIPT_NAME`.
    pub fastcgi_route_by: RouteBy,
    /// Open client connections at most.
    pub max_connections: usize,
    /// Guest instances alive at once; requests beyond get 503.
    pub max_instances: u32,
    /// Compile cache directory; `None` uses the default location.
    pub cache_dir: Option<PathBuf>,
    /// Whether to use the pooling allocator when the machine allows.
    pub pooling: bool,
    /// Bytes per pool slot (memory, table, stack) kept resident between requests.
    pub keep_resident: usize,
    /// Bytes the idle server's instance pool may keep resident in unused slots before the
    /// server gives them back (reloading its routes from the compile cache).
    pub idle_pool_resident: u64,
    /// Time allowed for a request head to arrive.
    pub header_timeout: Duration,
    /// Time an idle keep-alive connection stays open.
    pub keep_alive_timeout: Duration,
    /// Time a request body may stall while the guest waits for it (HTTP).
    pub body_timeout: Duration,
    /// Time a response write may make no progress.
    pub send_timeout: Duration,
    /// Time running requests get to finish after a shutdown signal; then they are stopped.
    pub shutdown_grace: Duration,
    /// Request line plus headers, in bytes.
    pub max_header_bytes: usize,
    /// Number of request header fields.
    pub max_headers: usize,
    /// Worker threads serving sockets (accepting, parsing, watching clients).
    pub io_threads: usize,
    /// Worker threads running guests.
    pub guest_threads: usize,
    /// Where a request's guest starts.
    pub guests_start_on: GuestStart,
}

/// Which CGI parameter FastCGI routing uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteBy {
    /// The request path, as over HTTP.
    RequestUri,
    /// `SCRIPT_NAME`, as php-fpm picks a script.
    ScriptName,
}

/// Where a request's guest starts (see `sched`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestStart {
    /// On a guest thread: I/O threads never run Wasm, so a client leaving is seen at once
    /// whatever its guest does.
    GuestThreads,
    /// On the I/O thread that read the request, until an epoch tick finds the guest computing:
    /// short requests need no hand-off between threads (more requests per second, a lower
    /// p99), but a client leaving during a computing guest's first tick is seen at that tick.
    IoThreads,
}

/// Where a route's component comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComponentSource {
    /// A file.
    File(PathBuf),
    /// A guest compiled into the binary.
    Builtin(&'static str, &'static [u8]),
}

impl ComponentSource {
    /// The component's bytes.
    pub fn read(&self) -> std::io::Result<std::borrow::Cow<'static, [u8]>> {
        match self {
            ComponentSource::File(path) => std::fs::read(path).map(Into::into),
            ComponentSource::Builtin(_, bytes) => Ok((*bytes).into()),
        }
    }
}

impl fmt::Display for ComponentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComponentSource::File(path) => write!(f, "{}", path.display()),
            ComponentSource::Builtin(name, _) => write!(f, "{BUILTIN_SCHEME}{name}"),
        }
    }
}

/// A preopened directory (`[[route.preopen]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreopenSpec {
    /// Host directory, resolved against the manifest's directory.
    pub host: PathBuf,
    /// Name inside the guest.
    pub guest: String,
    /// Whether the guest may write.
    pub writable: bool,
}

/// One route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// Path prefix, matched at segment boundaries.
    pub path: String,
    /// The component.
    pub component: ComponentSource,
    /// Where `component` is in the manifest, for errors found when loading it.
    pub component_at: Option<(usize, usize)>,
    /// Index among the routes, for error messages.
    pub index: usize,
    /// PHP's `output_buffering`, in bytes.
    pub output_buffer: usize,
    /// How aborts are detected.
    pub abort_detection: AbortDetection,
    /// Whether a client half-close counts as an abort.
    pub half_close_aborts: bool,
    /// Time in guest code allowed (`max_execution_time`); `None` is unlimited.
    pub max_execution_time: Option<Duration>,
    /// Wall-clock time allowed; `None` is unlimited.
    pub request_timeout: Option<Duration>,
    /// Linear memory allowed, in bytes.
    pub max_memory: u64,
    /// Request body allowed, in bytes.
    pub max_body_size: u64,
    /// The guest's environment.
    pub env: Vec<(String, String)>,
    /// The guest's directories.
    pub preopens: Vec<PreopenSpec>,
}

/// A validated manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Where it came from.
    pub origin: Origin,
    /// Server settings.
    pub server: ServerSettings,
    /// Routes, in manifest order.
    pub routes: Vec<RouteSpec>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    server: RawServer,
    #[serde(default, rename = "route")]
    routes: Vec<RawRoute>,
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default)]
    listen: Vec<Spanned<String>>,
    #[serde(default)]
    fastcgi: Vec<Spanned<String>>,
    #[serde(default = "default_socket_mode", deserialize_with = "socket_mode")]
    fastcgi_socket_mode: u32,
    #[serde(default = "default_route_by")]
    fastcgi_route_by: RouteBy,
    #[serde(default = "default_max_connections", deserialize_with = "at_least_one")]
    max_connections: usize,
    #[serde(default = "default_max_instances", deserialize_with = "at_least_one")]
    max_instances: u32,
    #[serde(default)]
    cache_dir: Option<PathBuf>,
    #[serde(default = "default_true")]
    pooling: bool,
    #[serde(default = "default_keep_resident", deserialize_with = "size")]
    keep_resident: u64,
    #[serde(default = "default_idle_pool_resident", deserialize_with = "size")]
    idle_pool_resident: u64,
    #[serde(default = "default_header_timeout", deserialize_with = "duration")]
    header_timeout: Duration,
    #[serde(default = "default_keep_alive_timeout", deserialize_with = "duration")]
    keep_alive_timeout: Duration,
    #[serde(default = "default_body_timeout", deserialize_with = "positive_duration")]
    body_timeout: Duration,
    #[serde(default = "default_send_timeout", deserialize_with = "positive_duration")]
    send_timeout: Duration,
    #[serde(default = "default_shutdown_grace", deserialize_with = "duration")]
    shutdown_grace: Duration,
    #[serde(default = "default_max_header_bytes", deserialize_with = "size")]
    max_header_bytes: u64,
    #[serde(default = "default_max_headers")]
    max_headers: usize,
    #[serde(default = "cores", deserialize_with = "at_least_one")]
    io_threads: usize,
    #[serde(default = "cores", deserialize_with = "at_least_one")]
    guest_threads: usize,
    #[serde(default = "default_guests_start_on")]
    guests_start_on: GuestStart,
}

impl Default for RawServer {
    fn default() -> Self {
        toml::from_str("").expect("every server field has a default")
    }
}

fn default_socket_mode() -> u32 {
    0o660
}
fn default_guests_start_on() -> GuestStart {
    GuestStart::GuestThreads
}
fn default_route_by() -> RouteBy {
    RouteBy::RequestUri
}
fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn default_max_instances() -> u32 {
    DEFAULT_MAX_INSTANCES
}
fn default_keep_resident() -> u64 {
    DEFAULT_KEEP_RESIDENT as u64
}
fn default_idle_pool_resident() -> u64 {
    DEFAULT_IDLE_POOL_RESIDENT
}
fn default_header_timeout() -> Duration {
    DEFAULT_HEADER_TIMEOUT
}
fn default_keep_alive_timeout() -> Duration {
    DEFAULT_KEEP_ALIVE_TIMEOUT
}
fn default_body_timeout() -> Duration {
    DEFAULT_BODY_TIMEOUT
}
fn default_send_timeout() -> Duration {
    DEFAULT_SEND_TIMEOUT
}
fn default_shutdown_grace() -> Duration {
    DEFAULT_SHUTDOWN_GRACE
}
fn default_max_header_bytes() -> u64 {
    DEFAULT_MAX_HEADER_BYTES
}
fn default_max_headers() -> usize {
    DEFAULT_MAX_HEADERS
}
/// Default `io_threads` and `guest_threads`: the number of cores.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A count that must not be zero (threads, connections, instances).
fn at_least_one<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default + PartialEq>(de: D) -> Result<T, D::Error> {
    let n = T::deserialize(de)?;
    if n == T::default() {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

/// What a client half-close means on a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum HalfClose {
    /// An abort, as nginx treats it.
    Abort,
    /// Not an abort: the request goes on; a full close then shows when a write draws a reset.
    Continue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: Spanned<String>,
    component: Spanned<String>,
    #[serde(default = "default_output_buffer", deserialize_with = "output_buffer")]
    output_buffer: u64,
    #[serde(default = "default_detection")]
    abort_detection: AbortDetection,
    #[serde(default = "default_half_close")]
    half_close: HalfClose,
    #[serde(default = "default_max_execution_time", deserialize_with = "duration")]
    max_execution_time: Duration,
    #[serde(default, deserialize_with = "duration")]
    request_timeout: Duration,
    #[serde(default = "default_max_memory", deserialize_with = "guest_memory")]
    max_memory: u64,
    #[serde(default = "default_max_body_size", deserialize_with = "size")]
    max_body_size: u64,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, String>,
    #[serde(default)]
    preopen: Vec<RawPreopen>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreopen {
    host: Spanned<String>,
    guest: String,
    #[serde(default)]
    writable: bool,
}

fn default_output_buffer() -> u64 {
    DEFAULT_OUTPUT_BUFFER
}
fn default_detection() -> AbortDetection {
    AbortDetection::Prompt
}
fn default_half_close() -> HalfClose {
    HalfClose::Abort
}
fn default_max_execution_time() -> Duration {
    DEFAULT_MAX_EXECUTION_TIME
}
fn default_max_memory() -> u64 {
    DEFAULT_MAX_MEMORY
}
fn default_max_body_size() -> u64 {
    DEFAULT_MAX_BODY_SIZE
}

/// A number, or a string to parse with `parse`.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

fn size<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    match NumberOrText::deserialize(de)? {
        NumberOrText::Number(n) => Ok(n),
        NumberOrText::Text(text) => parse_size(&text).map_err(serde::de::Error::custom),
    }
}

fn bounded_size<'de, D: Deserializer<'de>>(de: D, max: u64) -> Result<u64, D::Error> {
    let n = size(de)?;
    if n > max {
        return Err(serde::de::Error::custom(format!("{n} bytes is more than the maximum of {max}")));
    }
    Ok(n)
}

fn output_buffer<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    bounded_size(de, MAX_OUTPUT_BUFFER)
}

fn guest_memory<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    bounded_size(de, MAX_GUEST_MEMORY)
}

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

/// Turns a byte offset into a 1-based (line, column).
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, column)
}

/// The `key` of the `key = value` line at `offset`, prefixed with the table it is in, for
/// naming the field of a TOML error.
fn field_at(source: &str, offset: usize) -> Option<String> {
    let before = &source[..offset.min(source.len())];
    let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
    let line = source[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(key, _)| key.trim())
        .filter(|key| !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))?;
    let lines: Vec<&str> = before[..line_start].lines().map(str::trim).collect();
    let table = lines.iter().rev().find(|l| l.starts_with('[')).map(|header| table_name(&lines, header)).unwrap_or_default();
    Some(format!("{table}{key}"))
}

/// The field prefix of the table that `header` (the last header in `lines`) opens: `server.`,
/// `route[2].` for the second `[[route]]`, `route[2].preopen[1].` for the first
/// `[[route.preopen]]` under it.
fn table_name(lines: &[&str], header: &str) -> String {
    let array = header.starts_with("[[");
    let segments: Vec<&str> = header.trim_matches(|c| c == '[' || c == ']').split('.').map(str::trim).collect();
    let mut name = String::new();
    // Each array table's index counts its headers since its parent's header.
    let mut region = lines;
    for (i, segment) in segments.iter().enumerate() {
        name.push_str(segment);
        if array || i + 1 < segments.len() {
            let array_header = format!("[[{}]]", segments[..=i].join("."));
            if let Some(last) = region.iter().rposition(|l| *l == array_header) {
                let count = region.iter().filter(|l| **l == array_header).count();
                name.push_str(&format!("[{count}]"));
                region = &region[last + 1..];
            }
        }
        name.push('.');
    }
    name
}

impl Manifest {
    /// Reads and validates the manifest at `path`. `builtin` resolves `builtin:NAME` components.
    pub fn load(path: &Path, builtin: impl Fn(&str) -> Option<(&'static str, &'static [u8])>) -> Result<Manifest, ManifestError> {
        let source = std::fs::read_to_string(path).map_err(|error| ManifestError {
            file: path.display().to_string(),
            location: None,
            field: None,
            message: format!("cannot read the manifest: {error}"),
        })?;
        Manifest::parse(&source, Origin::File(path.to_owned()), builtin)
    }

    /// Parses and validates manifest text. `builtin` resolves `builtin:NAME` components.
    pub fn parse(
        source: &str,
        origin: Origin,
        builtin: impl Fn(&str) -> Option<(&'static str, &'static [u8])>,
    ) -> Result<Manifest, ManifestError> {
        let file = origin.name();
        let at = |span: std::ops::Range<usize>, field: String, message: String| ManifestError {
            file: file.clone(),
            location: Some(line_col(source, span.start)),
            field: Some(field),
            message,
        };
        let raw: RawManifest = toml::from_str(source).map_err(|error| {
            let span = error.span().unwrap_or(0..0);
            ManifestError {
                file: file.clone(),
                location: error.span().map(|span| line_col(source, span.start)),
                field: field_at(source, span.start),
                message: error.message().trim().to_owned(),
            }
        })?;
        let base = match &origin {
            Origin::File(path) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
            Origin::Builtin => PathBuf::new(),
        };
        let resolve = |path: &str| {
            let path = Path::new(path);
            if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
        };

        let listeners = |entries: &[Spanned<String>], name: &str| {
            entries
                .iter()
                .enumerate()
                .map(|(i, entry)| {
                    entry.get_ref().parse::<ListenAddr>().map_err(|message| at(entry.span(), format!("server.{name}[{i}]"), message))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let server = ServerSettings {
            listen: listeners(&raw.server.listen, "listen")?,
            fastcgi: listeners(&raw.server.fastcgi, "fastcgi")?,
            fastcgi_socket_mode: raw.server.fastcgi_socket_mode,
            fastcgi_route_by: raw.server.fastcgi_route_by,
            max_connections: raw.server.max_connections,
            max_instances: raw.server.max_instances,
            cache_dir: raw.server.cache_dir.map(|dir| resolve(&dir.to_string_lossy())),
            pooling: raw.server.pooling,
            keep_resident: usize::try_from(raw.server.keep_resident).unwrap_or(usize::MAX),
            idle_pool_resident: raw.server.idle_pool_resident,
            header_timeout: raw.server.header_timeout,
            keep_alive_timeout: raw.server.keep_alive_timeout,
            body_timeout: raw.server.body_timeout,
            send_timeout: raw.server.send_timeout,
            shutdown_grace: raw.server.shutdown_grace,
            max_header_bytes: usize::try_from(raw.server.max_header_bytes).unwrap_or(usize::MAX),
            max_headers: raw.server.max_headers,
            io_threads: raw.server.io_threads,
            guest_threads: raw.server.guest_threads,
            guests_start_on: raw.server.guests_start_on,
        };

        let mut routes: Vec<RouteSpec> = Vec::with_capacity(raw.routes.len());
        for (index, route) in raw.routes.into_iter().enumerate() {
            let field = |name: &str| format!("route[{}].{name}", index + 1);
            let path = route.path.get_ref().clone();
            if !path.starts_with('/') {
                return Err(at(route.path.span(), field("path"), format!("`{path}` must start with `/`")));
            }
            if path.contains(['?', '#']) {
                return Err(at(route.path.span(), field("path"), format!("`{path}` must be a path, without query or fragment")));
            }
            let path = if path.len() > 1 { path.trim_end_matches('/').to_owned() } else { path };
            if let Some(other) = routes.iter().find(|r| r.path == path) {
                return Err(at(route.path.span(), field("path"), format!("`{path}` is already the path of route {}", other.index + 1)));
            }
            let spec = route.component.get_ref();
            let component = match spec.strip_prefix(BUILTIN_SCHEME) {
                Some(name) => {
                    let (name, bytes) = builtin(name)
                        .ok_or_else(|| at(route.component.span(), field("component"), format!("there is no built-in guest `{name}`")))?;
                    ComponentSource::Builtin(name, bytes)
                }
                None => {
                    let file = resolve(spec);
                    if !file.is_file() {
                        return Err(at(
                            route.component.span(),
                            field("component"),
                            format!("component file not found: {}", file.display()),
                        ));
                    }
                    ComponentSource::File(file)
                }
            };
            let mut env = Vec::with_capacity(route.env.len());
            for (key, value) in route.env {
                if key.get_ref().is_empty() || key.get_ref().contains(['=', '\0']) {
                    return Err(at(key.span(), field("env"), format!("`{}` is not a valid variable name", key.get_ref())));
                }
                env.push((key.into_inner(), value));
            }
            let mut preopens = Vec::with_capacity(route.preopen.len());
            for (i, preopen) in route.preopen.into_iter().enumerate() {
                let host = resolve(preopen.host.get_ref());
                if !host.is_dir() {
                    return Err(at(
                        preopen.host.span(),
                        format!("route[{}].preopen[{}].host", index + 1, i + 1),
                        format!("not a directory: {}", host.display()),
                    ));
                }
                preopens.push(PreopenSpec { host, guest: preopen.guest, writable: preopen.writable });
            }
            routes.push(RouteSpec {
                path,
                component,
                component_at: Some(line_col(source, route.component.span().start)),
                index,
                output_buffer: usize::try_from(route.output_buffer).unwrap_or(usize::MAX),
                abort_detection: route.abort_detection,
                half_close_aborts: route.half_close == HalfClose::Abort,
                max_execution_time: (!route.max_execution_time.is_zero()).then_some(route.max_execution_time),
                request_timeout: (!route.request_timeout.is_zero()).then_some(route.request_timeout),
                max_memory: route.max_memory,
                max_body_size: route.max_body_size,
                env,
                preopens,
            });
        }
        if routes.is_empty() {
            return Err(ManifestError {
                file,
                location: None,
                field: Some("route".to_owned()),
                message: "the manifest has no routes; add at least one [[route]]".to_owned(),
            });
        }
        Ok(Manifest { origin, server, routes })
    }

    /// An error about route `route`'s component, found after parsing (for example when the
    /// file is not a valid component).
    pub fn component_error(&self, route: &RouteSpec, message: String) -> ManifestError {
        ManifestError {
            file: self.origin.name(),
            location: route.component_at,
            field: Some(format!("route[{}].component", route.index + 1)),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Origin::File(PathBuf::from("/nonexistent/t.toml")), |name| {
            (name == "hello").then_some(("hello", &b"wasm"[..]))
        })
    }

    #[test]
    fn defaults_apply() {
        let m = parse("[[route]]\npath = \"/\"\ncomponent = \"builtin:hello\"\n").unwrap();
        let r = &m.routes[0];
        assert_eq!(r.output_buffer, 4096);
        assert_eq!(r.abort_detection, AbortDetection::Prompt);
        assert!(r.half_close_aborts);
        assert_eq!(r.max_execution_time, Some(Duration::from_secs(30)));
        assert_eq!(r.request_timeout, None);
        assert_eq!(r.max_memory, 128 << 20);
        assert_eq!(m.server.max_instances, DEFAULT_MAX_INSTANCES);
        assert_eq!(m.server.guests_start_on, GuestStart::GuestThreads);
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let err = parse("[[route]]\npath = \"/\"\ncomponent = \"builtin:hello\"\noutputbuffer = 5\n").unwrap_err();
        assert_eq!(err.location.map(|l| l.0), Some(4));
        assert_eq!(err.field.as_deref(), Some("route[1].outputbuffer"));
        assert!(err.message.contains("unknown field `outputbuffer`"), "{err}");
    }

    #[test]
    fn a_nested_table_names_its_parent() {
        let route = |path: &str| format!("[[route]]\npath = \"{path}\"\ncomponent = \"builtin:hello\"\n");
        let preopen = "[[route.preopen]]\nhost = \".\"\nguest = \"d\"\n";
        let err = parse(&format!("{}{preopen}{}{preopen}{preopen}writabel = true\n", route("/a"), route("/b"))).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("route[2].preopen[2].writabel"), "{err}");
        assert_eq!(err.location.map(|l| l.0), Some(16));
    }

    #[test]
    fn bad_values_name_their_field() {
        let err = parse("[[route]]\npath = \"/\"\ncomponent = \"builtin:hello\"\nabort_detection = \"sometimes\"\n").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("route[1].abort_detection"));
        assert_eq!(err.location.map(|l| l.0), Some(4));
        let err = parse("[[route]]\npath = \"/\"\ncomponent = \"builtin:hello\"\nmax_memory = \"8GiB\"\n").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("route[1].max_memory"));
        assert!(err.message.contains("maximum"), "{err}");
        let err = parse("[server]\nlisten = [\"nowhere\"]\n[[route]]\npath = \"/\"\ncomponent = \"builtin:hello\"\n").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("server.listen[0]"));
        assert_eq!(err.location.map(|l| l.0), Some(2));
        let route = "[[route]]\npath = \"/\"\ncomponent = \"builtin:hello\"\n";
        let err = parse(&format!("[server]\nfastcgi_socket_mode = 660\n{route}")).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("server.fastcgi_socket_mode"));
        assert!(err.message.contains("octal"), "{err}");
        assert_eq!(parse(&format!("[server]\nfastcgi_socket_mode = 0o640\n{route}")).unwrap().server.fastcgi_socket_mode, 0o640);
        let err = parse(&format!("[server]\nmax_connections = 0\n{route}")).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("server.max_connections"));
        let err = parse(&format!("[server]\nsend_timeout = 0\n{route}")).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("server.send_timeout"));
        let m = parse(&format!("[server]\nbody_timeout = \"250ms\"\n{route}")).unwrap();
        assert_eq!((m.server.body_timeout, m.server.send_timeout), (Duration::from_millis(250), DEFAULT_SEND_TIMEOUT));
    }

    #[test]
    fn semantic_errors_point_at_the_field() {
        let err = parse("[[route]]\npath = \"/\"\ncomponent = \"missing.wasm\"\n").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("route[1].component"));
        assert_eq!(err.location, Some((3, 13)));
        assert!(err.to_string().starts_with("/nonexistent/t.toml:3:13: field `route[1].component`: component file not found"), "{err}");

        let err =
            parse("[[route]]\npath = \"/a\"\ncomponent = \"builtin:hello\"\n[[route]]\npath = \"/a/\"\ncomponent = \"builtin:hello\"\n")
                .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("route[2].path"));
        assert_eq!(err.location.map(|l| l.0), Some(5));

        let err = parse("[[route]]\npath = \"a\"\ncomponent = \"builtin:hello\"\n").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("route[1].path"));

        let err = parse("[[route]]\npath = \"/\"\ncomponent = \"builtin:nope\"\n").unwrap_err();
        assert!(err.message.contains("no built-in guest"));

        assert!(parse("").unwrap_err().message.contains("no routes"));
    }

    #[test]
    fn units_and_listeners_parse() {
        let m = parse(
            "[server]\nlisten = [\"127.0.0.1:0\", \"unix:/tmp/t.sock\"]\nguests_start_on = \"io-threads\"\n[[route]]\npath = \"/x/\"\ncomponent = \"builtin:hello\"\noutput_buffer = \"64KiB\"\nrequest_timeout = \"1500ms\"\nmax_execution_time = 0\nabort_detection = \"write\"\nhalf_close = \"continue\"\n",
        )
        .unwrap();
        assert_eq!(m.server.listen[1], ListenAddr::Unix(PathBuf::from("/tmp/t.sock")));
        assert_eq!(m.server.guests_start_on, GuestStart::IoThreads);
        let r = &m.routes[0];
        assert_eq!(r.path, "/x");
        assert_eq!(r.output_buffer, 64 << 10);
        assert_eq!(r.request_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(r.max_execution_time, None);
        assert_eq!(r.abort_detection, AbortDetection::Write);
        assert!(!r.half_close_aborts);
    }
}
