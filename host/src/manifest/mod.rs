//! The TOML manifest: listeners, server limits, and routes (path prefix → component, with the
//! route's output buffer, abort detection, time and memory limits, and sandbox grants).
//!
//! This module owns the validated types the rest of the crate reads ([`Manifest`],
//! [`ServerSettings`], [`RouteSpec`]), the defaults and limits of every setting, and the checks
//! that need more than one value or the file system (a component that must exist, a path that
//! must be unique). The TOML schema itself is in `raw`; finding the line and field of an error is
//! in `locate`.
//!
//! Parsing is strict (`deny_unknown_fields`) and every error names the file, the line and the
//! field, whether TOML rejected it or a later check did. The error cases are snapshot tests:
//! `tests/NAME.toml` next to `tests/NAME.err`, the exact message it gives.

mod locate;
mod raw;

use crate::request::AbortDetection;
use crate::runtime::{World, outbound_key};
use locate::{field_at, line_col};
use raw::{HalfClose, RawManifest};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
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
/// Default `max_execution_time`, PHP's 30 seconds: a guest stuck in a loop is stopped rather
/// than holding its instance and a guest thread for ever.
pub const DEFAULT_MAX_EXECUTION_TIME: Duration = Duration::from_secs(30);
/// Default `max_memory`, PHP's `memory_limit=128M`: what one guest may take of the host's memory.
pub const DEFAULT_MAX_MEMORY: u64 = 128 << 20;
/// Default `max_body_size`, PHP's `post_max_size=8M`: a larger request body gets 413, so that
/// a client cannot feed a guest without end.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 8 << 20;
/// Default `max_connections`: open client connections; beyond it, new ones wait in the backlog,
/// so that a flood of clients cannot exhaust file descriptors or connection memory.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default `max_instances`: guests alive at once (the instance pool); beyond it, 503, so that
/// concurrent requests cannot take more memory than the pool reserves.
pub const DEFAULT_MAX_INSTANCES: u32 = 1_000;
/// Default `keep_resident`: per used pool slot, up to this much of its memory, table and stack
/// each stays resident between requests (see `runtime::EngineLimits::keep_resident`). Only
/// pages a request wrote are kept: a Rust guest's request writes a few pages, a JavaScript
/// guest's about 1 MiB and a Python guest's 1-4 MiB, and with less kept, their next request in
/// the slot takes a copy-on-write fault per page again.
pub const DEFAULT_KEEP_RESIDENT: usize = 4 << 20;
/// Default `idle_pool_resident`: once the server is idle, the most memory the instance pool may
/// keep resident in unused slots (what `keep_resident` left behind) before it is given back.
/// About a thousand slots' worth: a server whose concurrency stays below that never reloads.
pub const DEFAULT_IDLE_POOL_RESIDENT: u64 = 32 << 20;
/// Default `header_timeout`: how long a client may take to send a request head, so that a
/// client trickling a head byte by byte cannot hold a connection for ever.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `keep_alive_timeout`: how long an idle keep-alive connection stays open (nginx's),
/// so that idle clients give their connection slot back.
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
/// Default `socket_mode`, php-fpm's `listen.mode`: the server's user and group may connect.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;
/// The largest `socket_mode`: permission bits only, so that a mode written in decimal (`660`,
/// which is `0o1224`) is refused rather than giving the socket file a mode nobody meant.
const MAX_SOCKET_MODE: u32 = 0o777;
/// Default `max_header_bytes`: the request line plus headers (431 beyond), which the front end
/// buffers in full before routing.
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 16 << 10;
/// Default `max_headers`: number of request header fields (431 beyond), bounding the work and
/// memory of parsing one head.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// The scheme of components compiled into the binary (the example guests).
pub const BUILTIN_SCHEME: &str = "builtin:";

/// A manifest problem, located as precisely as the input allows.
#[derive(Debug, Error)]
pub struct ManifestError {
    /// The manifest file (or `<built-in example manifest>`).
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
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
    /// The admin listener (`/ping`, `/status`, `/metrics`; it never runs guests), off unless set.
    pub admin: Option<ListenAddr>,
    /// Permission bits of the Unix socket files the server listens on, HTTP and FastCGI alike
    /// (php-fpm's `listen.mode`): who may connect.
    pub socket_mode: u32,
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
    /// Threads serving sockets (accepting, parsing, watching clients), each with a runtime of
    /// its own that keeps the connections it accepted.
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
    /// As `IoThreads`, except for a route whose last two requests computed: as `GuestThreads`
    /// until one of its requests ends without computing (learned per route, see
    /// `sched::Placement`).
    Auto,
    /// On a guest thread: I/O threads never run Wasm, so a client leaving is seen at once
    /// whatever its guest does.
    GuestThreads,
    /// On the I/O thread that read the request, until an epoch tick finds the guest computing
    /// (while guests run on I/O threads only, a tick comes every 500 µs): short requests need
    /// no hand-off between threads (more requests per second, a lower p99), but a client
    /// leaving during a computing guest's first tick is seen at that tick.
    IoThreads,
}

/// Where a route's component comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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

/// How `tether build` makes a route's component (`[route.build]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildSpec {
    /// A shell command (`sh -c`).
    pub command: String,
    /// The directory it runs in, resolved against the manifest's directory (by default that
    /// directory itself).
    pub workdir: PathBuf,
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
    /// The world the route declares its component to be (`world`); `None`: whichever it
    /// exports.
    pub world: Option<World>,
    /// Where `world` is in the manifest, for a component that turns out to be of another.
    pub world_at: Option<(usize, usize)>,
    /// Index among the routes, for error messages.
    pub index: usize,
    /// PHP's `output_buffering`, in bytes.
    pub output_buffer: usize,
    /// How aborts are detected.
    pub abort_detection: AbortDetection,
    /// Whether a client half-close counts as an abort.
    pub half_close_aborts: bool,
    /// PHP's `ignore_user_abort` ini setting: the request's initial setting, which a Tether
    /// guest may change and a wasi:http component cannot.
    pub ignore_user_abort: bool,
    /// Time in guest code allowed (`max_execution_time`); `None` is unlimited.
    pub max_execution_time: Option<Duration>,
    /// Wall-clock time allowed; `None` is unlimited.
    pub request_timeout: Option<Duration>,
    /// Wall-clock time after which a request still running is logged with its guest's stack
    /// (php-fpm's `request_slowlog_timeout`); `None` is off.
    pub slowlog_timeout: Option<Duration>,
    /// Linear memory allowed, in bytes.
    pub max_memory: u64,
    /// Request body allowed, in bytes.
    pub max_body_size: u64,
    /// The guest's environment.
    pub env: Vec<(String, String)>,
    /// The guest's directories.
    pub preopens: Vec<PreopenSpec>,
    /// Where a wasi:http component may send requests (`allowed_outbound_hosts`, as Spin names
    /// it): `host:port` authorities, lowercased; nothing else.
    pub allowed_outbound_hosts: Vec<String>,
    /// How `tether build` makes the component, if the manifest says.
    pub build: Option<BuildSpec>,
}

/// Whether parsing requires every component file to exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Components {
    /// Serving or checking: every file must be there.
    MustExist,
    /// Building: a route with a build command may still lack its file.
    MayBeUnbuilt,
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

impl Manifest {
    /// The files it reads: itself (unless built in) and its routes' component files.
    pub fn files(&self) -> Vec<PathBuf> {
        let origin = match &self.origin {
            Origin::File(path) => Some(path.clone()),
            Origin::Builtin => None,
        };
        let components = self.routes.iter().filter_map(|route| match &route.component {
            ComponentSource::File(path) => Some(path.clone()),
            ComponentSource::Builtin(..) => None,
        });
        origin.into_iter().chain(components).collect()
    }

    /// Reads and validates the manifest at `path`. `builtin` resolves `builtin:NAME` components.
    pub fn load(path: &Path, builtin: impl Fn(&str) -> Option<(&'static str, &'static [u8])>) -> Result<Manifest, ManifestError> {
        Manifest::load_with(path, builtin, Components::MustExist)
    }

    /// Reads and validates the manifest at `path` for `tether build`: as [`Manifest::load`],
    /// except that a route's component file need not exist yet when the route says how to build
    /// it.
    pub fn load_for_build(path: &Path, builtin: impl Fn(&str) -> Option<(&'static str, &'static [u8])>) -> Result<Manifest, ManifestError> {
        Manifest::load_with(path, builtin, Components::MayBeUnbuilt)
    }

    fn load_with(
        path: &Path,
        builtin: impl Fn(&str) -> Option<(&'static str, &'static [u8])>,
        components: Components,
    ) -> Result<Manifest, ManifestError> {
        let source = std::fs::read_to_string(path).map_err(|error| ManifestError {
            file: path.display().to_string(),
            location: None,
            field: None,
            message: format!("cannot read the manifest: {error}"),
        })?;
        Manifest::parse_with(&source, Origin::File(path.to_owned()), builtin, components)
    }

    /// Parses and validates manifest text. `builtin` resolves `builtin:NAME` components.
    pub fn parse(
        source: &str,
        origin: Origin,
        builtin: impl Fn(&str) -> Option<(&'static str, &'static [u8])>,
    ) -> Result<Manifest, ManifestError> {
        Manifest::parse_with(source, origin, builtin, Components::MustExist)
    }

    fn parse_with(
        source: &str,
        origin: Origin,
        builtin: impl Fn(&str) -> Option<(&'static str, &'static [u8])>,
        components: Components,
    ) -> Result<Manifest, ManifestError> {
        let file = origin.name();
        let at = |span: Range<usize>, field: String, message: String| ManifestError {
            file: file.clone(),
            location: Some(line_col(source, span.start)),
            field: Some(field),
            message,
        };
        // TOML's errors carry a span but no field name; `locate` reads both back from the text.
        let toml_error = |span: Option<Range<usize>>, message: String| ManifestError {
            file: file.clone(),
            location: span.as_ref().map(|span| line_col(source, span.start)),
            field: field_at(source, span.map_or(0, |span| span.start)),
            message,
        };
        let raw: RawManifest = toml::from_str(source).map_err(|error| toml_error(error.span(), error.message().trim().to_owned()))?;
        // `path` and `component` have no default, so serde leaves them out when they are missing
        // (see `raw::RawRoute`); they are reported here as TOML reports a missing field, at the
        // route's header, before any other check.
        let raw_routes = raw
            .routes
            .into_iter()
            .map(|route| {
                let span = route.span();
                let mut route = route.into_inner();
                let missing = |name: &str| toml_error(Some(span.clone()), format!("missing field `{name}`"));
                let path = route.path.take().ok_or_else(|| missing("path"))?;
                let component = route.component.take().ok_or_else(|| missing("component"))?;
                Ok((path, component, route))
            })
            .collect::<Result<Vec<_>, ManifestError>>()?;
        let base = match &origin {
            Origin::File(path) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
            Origin::Builtin => PathBuf::new(),
        };
        let resolve = |path: &str| {
            let path = Path::new(path);
            if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
        };

        let listener = |entry: &Spanned<String>, field: String| {
            entry.get_ref().parse::<ListenAddr>().map_err(|message| at(entry.span(), field, message))
        };
        let listeners = |entries: &[Spanned<String>], name: &str| {
            entries.iter().enumerate().map(|(i, entry)| listener(entry, format!("server.{name}[{i}]"))).collect::<Result<Vec<_>, _>>()
        };
        let server = ServerSettings {
            listen: listeners(&raw.server.listen, "listen")?,
            fastcgi: listeners(&raw.server.fastcgi, "fastcgi")?,
            admin: raw.server.admin.as_ref().map(|entry| listener(entry, "server.admin".to_owned())).transpose()?,
            socket_mode: raw.server.socket_mode,
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

        let mut routes: Vec<RouteSpec> = Vec::with_capacity(raw_routes.len());
        for (index, (path_field, component_field, route)) in raw_routes.into_iter().enumerate() {
            let field = |name: &str| format!("route[{}].{name}", index + 1);
            let path = path_field.get_ref().clone();
            if !path.starts_with('/') {
                return Err(at(path_field.span(), field("path"), format!("`{path}` must start with `/`")));
            }
            if path.contains(['?', '#']) {
                return Err(at(path_field.span(), field("path"), format!("`{path}` must be a path, without query or fragment")));
            }
            let path = if path.len() > 1 { path.trim_end_matches('/').to_owned() } else { path };
            if let Some(other) = routes.iter().find(|r| r.path == path) {
                return Err(at(path_field.span(), field("path"), format!("`{path}` is already the path of route {}", other.index + 1)));
            }
            let spec = component_field.get_ref();
            let component = match spec.strip_prefix(BUILTIN_SCHEME) {
                Some(name) => {
                    let (name, bytes) = builtin(name)
                        .ok_or_else(|| at(component_field.span(), field("component"), format!("there is no built-in guest `{name}`")))?;
                    ComponentSource::Builtin(name, bytes)
                }
                None => {
                    let file = resolve(spec);
                    let unbuilt = components == Components::MayBeUnbuilt && route.build.is_some();
                    if !file.is_file() && !unbuilt {
                        let hint = if route.build.is_some() { "; the route's build command makes it: run `tether build`" } else { "" };
                        return Err(at(
                            component_field.span(),
                            field("component"),
                            format!("component file not found: {}{hint}", file.display()),
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
            let mut allowed_outbound_hosts = Vec::with_capacity(route.allowed_outbound_hosts.len());
            for (i, host) in route.allowed_outbound_hosts.iter().enumerate() {
                let authority = outbound_authority(host.get_ref())
                    .map_err(|message| at(host.span(), format!("route[{}].allowed_outbound_hosts[{}]", index + 1, i + 1), message))?;
                allowed_outbound_hosts.push(authority);
            }
            let build = match route.build {
                Some(build) => {
                    let workdir = match &build.workdir {
                        Some(dir) if !resolve(dir.get_ref()).is_dir() => {
                            let message = format!("not a directory: {}", resolve(dir.get_ref()).display());
                            return Err(at(dir.span(), field("build.workdir"), message));
                        }
                        Some(dir) => resolve(dir.get_ref()),
                        None => base.clone(),
                    };
                    Some(BuildSpec { command: build.command, workdir })
                }
                None => None,
            };
            routes.push(RouteSpec {
                path,
                component,
                component_at: Some(line_col(source, component_field.span().start)),
                world: route.world.as_ref().map(|world| *world.get_ref()),
                world_at: route.world.as_ref().map(|world| line_col(source, world.span().start)),
                index,
                output_buffer: usize::try_from(route.output_buffer).unwrap_or(usize::MAX),
                abort_detection: route.abort_detection,
                half_close_aborts: route.half_close == HalfClose::Abort,
                ignore_user_abort: route.ignore_user_abort,
                max_execution_time: (!route.max_execution_time.is_zero()).then_some(route.max_execution_time),
                request_timeout: (!route.request_timeout.is_zero()).then_some(route.request_timeout),
                slowlog_timeout: (!route.slowlog_timeout.is_zero()).then_some(route.slowlog_timeout),
                max_memory: route.max_memory,
                max_body_size: route.max_body_size,
                env,
                preopens,
                allowed_outbound_hosts,
                build,
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

    /// An error about route `route`'s `world`: its component, once loaded, is of another.
    pub fn world_error(&self, route: &RouteSpec, message: String) -> ManifestError {
        ManifestError {
            file: self.origin.name(),
            location: route.world_at,
            field: Some(format!("route[{}].world", route.index + 1)),
            message,
        }
    }
}

/// An `allowed_outbound_hosts` entry, `HOST`, `HOST:PORT` or either after `http://`, as the
/// authority outbound requests are matched against ([`outbound_key`]).
fn outbound_authority(entry: &str) -> Result<String, String> {
    if entry.starts_with("https://") {
        return Err(format!("`{entry}`: only http:// hosts can be allowed (the host has no TLS client)"));
    }
    let rest = entry.strip_prefix("http://").unwrap_or(entry);
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    match authority.parse::<http::uri::Authority>() {
        Ok(parsed) if parsed.as_str() == authority && !authority.contains('@') => Ok(outbound_key(parsed.host(), parsed.port_u16())),
        _ => Err(format!("`{entry}` is not a host: write `HOST`, `HOST:PORT` or `http://HOST:PORT`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Resolves `builtin:hello` only, to a component that is never loaded.
    fn builtin(name: &str) -> Option<(&'static str, &'static [u8])> {
        (name == "hello").then_some(("hello", &b"wasm"[..]))
    }

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Origin::File(PathBuf::from("/nonexistent/t.toml")), builtin)
    }

    const ROUTE: &str = "[[route]]\npath = \"/\"\ncomponent = \"builtin:hello\"\n";

    #[test]
    fn defaults_apply() {
        let m = parse(ROUTE).unwrap();
        let r = &m.routes[0];
        assert_eq!(r.output_buffer, 4096);
        assert_eq!(r.abort_detection, AbortDetection::Prompt);
        assert!(r.half_close_aborts);
        assert_eq!(r.max_execution_time, Some(Duration::from_secs(30)));
        assert_eq!(r.request_timeout, None);
        assert_eq!(r.max_memory, 128 << 20);
        assert_eq!(m.server.max_instances, DEFAULT_MAX_INSTANCES);
        assert_eq!(m.server.guests_start_on, GuestStart::Auto);
        assert_eq!(m.server.socket_mode, 0o660);
    }

    #[test]
    fn server_settings_parse() {
        let m = parse(&format!("[server]\nsocket_mode = 0o640\nbody_timeout = \"250ms\"\n{ROUTE}")).unwrap();
        assert_eq!(m.server.socket_mode, 0o640);
        assert_eq!((m.server.body_timeout, m.server.send_timeout), (Duration::from_millis(250), DEFAULT_SEND_TIMEOUT));
    }

    #[test]
    fn wasi_http_settings_parse() {
        let m = parse(&format!(
            "{ROUTE}world = \"wasi-http\"\nignore_user_abort = true\nallowed_outbound_hosts = [\"Example.com\", \"http://127.0.0.1:8081/\", \"[::1]:9\"]\n"
        ))
        .unwrap();
        let r = &m.routes[0];
        assert_eq!((r.world, r.world_at.map(|(line, _)| line), r.ignore_user_abort), (Some(World::WasiHttp), Some(4), true));
        assert_eq!(r.allowed_outbound_hosts, ["example.com:80", "127.0.0.1:8081", "[::1]:9"]);
        let defaults = &parse(ROUTE).unwrap().routes[0];
        assert_eq!((defaults.world, defaults.ignore_user_abort, defaults.allowed_outbound_hosts.len()), (None, false, 0));
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

    /// The error cases: each `tests/NAME.toml` must fail with exactly the message in
    /// `tests/NAME.err`, a final newline aside. Each is parsed as the relative file `NAME.toml`,
    /// so that the messages hold no absolute paths. `UPDATE_SNAPSHOTS=1` writes the `.err` files
    /// from the messages instead.
    #[test]
    fn error_snapshots() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/manifest/tests");
        let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|value| value == "1");
        let mut files: Vec<PathBuf> = fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).collect();
        files.sort();
        let mut failures = Vec::new();
        let mut cases = 0;
        for file in &files {
            let name = file.file_name().unwrap().to_string_lossy();
            let (case, snapshot) = (file.with_extension("toml"), file.with_extension("err"));
            match file.extension().and_then(|extension| extension.to_str()) {
                Some("toml") => cases += 1,
                Some("err") if !case.exists() => {
                    failures.push(format!("{name}: no {} next to it", case.display()));
                    continue;
                }
                _ => continue,
            }
            let actual = match Manifest::parse(&fs::read_to_string(file).unwrap(), Origin::File(PathBuf::from(&*name)), builtin) {
                Ok(_) => {
                    failures.push(format!("{name}: parsed without an error"));
                    continue;
                }
                Err(error) => error.to_string(),
            };
            if update {
                fs::write(&snapshot, format!("{actual}\n")).unwrap();
                continue;
            }
            match fs::read_to_string(&snapshot) {
                Ok(expected) if expected.strip_suffix('\n').unwrap_or(&expected) == actual => {}
                Ok(expected) => {
                    failures.push(format!("{name}: the error differs from {}\n{}", snapshot.display(), diff(&expected, &actual)))
                }
                Err(error) => failures.push(format!(
                    "{name}: cannot read {} ({error}); UPDATE_SNAPSHOTS=1 writes it\n{}",
                    snapshot.display(),
                    diff("", &actual)
                )),
            }
        }
        assert!(cases > 0, "no NAME.toml cases in {}", dir.display());
        assert!(failures.is_empty(), "{} failure(s) in {cases} manifest snapshots:\n\n{}", failures.len(), failures.join("\n\n"));
    }

    /// `expected` and `actual` line by line: `-` for an expected line, `+` for what came instead.
    fn diff(expected: &str, actual: &str) -> String {
        let (expected, actual): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
        let mut out = String::new();
        for i in 0..expected.len().max(actual.len()) {
            match (expected.get(i), actual.get(i)) {
                (Some(e), Some(a)) if e == a => out.push_str(&format!("  {e}\n")),
                (e, a) => {
                    if let Some(e) = e {
                        out.push_str(&format!("- {e}\n"));
                    }
                    if let Some(a) = a {
                        out.push_str(&format!("+ {a}\n"));
                    }
                }
            }
        }
        out
    }
}
