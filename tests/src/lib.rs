//! The integration-test harness: starts the real `tether` binary on `127.0.0.1:0` with a
//! generated manifest, reads its JSON log, and talks to it with raw sockets.
//!
//! The clients here are written independently of the host's codecs (a bug in the host's HTTP
//! parser must not be mirrored by the test's), every socket has a read timeout, and waiting is
//! always for an event (a log line, a byte, a closed socket), never a sleep.

pub mod apache;
pub mod caddy;
pub mod fcgi;
pub mod foreground;
pub mod front;
pub mod matrix;
pub mod nginx;
pub mod proxy;
pub mod soak;

use serde_json::Value;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long any wait may take before the test fails. Generous: it bounds failures, it is never
/// how long a passing test takes.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// How many of the last log events a timed-out wait shows.
const FAILURE_LOG_EVENTS: usize = 40;

/// The message the server logs once it has trimmed its heap after going idle (the host's
/// `heap::IDLE_TRIMMED`; kept apart so this crate does not link the host).
pub const IDLE_TRIMMED: &str = "idle: returned freed memory to the OS";
/// What the server logs when, idle after a burst, it has given its instance pool back (with
/// `pool_kib` and `elapsed_ms`; `generation::Generations::release_pool`), before
/// [`IDLE_TRIMMED`].
pub const POOL_RELEASED: &str = "idle: released the instance pool";
/// What the server logs when a reload has put the next generation in force (with
/// `generation`; the host's `server::RELOADED`).
pub const RELOADED: &str = "reloaded";
/// What the server logs when a reload failed (with `error`; the host's
/// `server::RELOAD_FAILED`).
pub const RELOAD_FAILED: &str = "reload failed; serving on with the generation in force";

/// The directory with the built guests (`<name>.wasm`): where `host/build.rs` puts them,
/// `<target>/guests/wasm32-wasip2/guest/examples`. Building the `tether` binary builds them.
pub fn guest_dir() -> PathBuf {
    tether_bin();
    target_dir().join("guests/wasm32-wasip2/guest/examples")
}

/// The path of a built guest, for a manifest.
pub fn guest(name: &str) -> String {
    let path = guest_dir().join(format!("{name}.wasm"));
    assert!(path.is_file(), "guest {name} was not built: {}", path.display());
    path.display().to_string()
}

/// Compiles the components of `manifest` (the built-in example manifest if `None`) into the
/// tests' compile cache with `tether check`, with no time limit: the servers the tests start
/// then load them from the cache within [`TIMEOUT`].
pub fn compile(manifest: Option<&Path>) {
    let mut check = Command::new(tether_bin());
    check.arg("check");
    if let Some(manifest) = manifest {
        check.arg(manifest);
    }
    let output = check.arg("--cache-dir").arg(scratch_dir().join("cache")).output().expect("running tether check");
    assert!(output.status.success(), "compiling the guests failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// The component `name` of the example guests in `lang` (`js`, `python`, `c`):
/// `<target>/lang-guests/<lang>/<name>.wasm`, which the host's build makes (host/build.rs runs
/// `scripts/build-langs`). `seeds` is every language's; Python's `proxy` is a wasi:http
/// component.
pub fn lang_guest(lang: &str, name: &str) -> String {
    let path = target_dir().join("lang-guests").join(lang).join(format!("{name}.wasm"));
    assert!(path.is_file(), "the {lang} guest {name} was not built: the host's build builds it (cargo build -p host)");
    path.display().to_string()
}

/// The settings of a `builtin:php` route serving the host directory `root` as its document
/// root, preopened at `guest_root`, with `env` in its environment next to `DOCUMENT_ROOT`. They
/// end in the preopen's subtable: a route's own settings go before them, more subtables after.
pub fn php_document_root(root: &Path, guest_root: &str, env: &[(&str, &str)]) -> String {
    let env: String = env.iter().map(|(name, value)| format!(", {name} = \"{value}\"")).collect();
    format!(
        "env = {{ DOCUMENT_ROOT = \"{guest_root}\"{env} }}\n[[route.preopen]]\nhost = \"{}\"\nguest = \"{guest_root}\"\n",
        root.display()
    )
}

/// Compiles the components of `manifest` into the tests' compile cache ([`compile`]), so that
/// servers started afterwards load them from it: a debug host takes longer than [`TIMEOUT`] to
/// compile a JavaScript or Python component, and servers started at once would each compile it
/// again.
pub fn compile_ahead(manifest: &Manifest) {
    let path = fresh_dir("compile").join("tether.toml");
    std::fs::write(&path, manifest.to_string()).expect("writing the manifest");
    compile(Some(&path));
}

/// `PATH` with the guest toolchains `scripts/setup-langs` installs under `<target>/lang-tools`
/// in front (componentize-js, componentize-py, componentize-c), as a user has them on theirs.
pub fn path_with_lang_tools() -> std::ffi::OsString {
    let tools = target_dir().join("lang-tools");
    let dirs = ["js/node_modules/.bin", "python/venv/bin", "c/bin"].map(|dir| tools.join(dir));
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(dirs.into_iter().chain(std::env::split_paths(&path))).expect("a PATH")
}

/// Scratch space for this test run (manifests, sockets, the compile cache). The first call in a
/// test process removes what earlier test processes left there ([`sweep_scratch`]).
pub fn scratch_dir() -> PathBuf {
    let dir = target_dir().join("tmp").join("tether-tests");
    std::fs::create_dir_all(&dir).expect("creating the scratch directory");
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| sweep_scratch(&dir));
    dir
}

/// Removes the [`fresh_dir`]s of test processes that have exited: their names carry the
/// process id (`<name>-<pid>-<n>`). A running process's are kept, and so is everything else
/// (the shared compile cache).
fn sweep_scratch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|name| name.rsplit('-').nth(1)).and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A fresh, empty directory under [`scratch_dir`].
pub fn fresh_dir(name: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = scratch_dir().join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a test directory");
    dir
}

/// A fresh path for a Unix socket. Unix socket paths are short (108 bytes): it is in the
/// system's temp directory.
pub fn socket_path() -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("tether-test-{}-{n}.sock", std::process::id()))
}

/// `<target>`: the cargo target directory of the running binary.
pub fn target_dir() -> PathBuf {
    profile_dir().parent().expect("<target>").to_path_buf()
}

/// `<target>/<profile>` of the running binary: tests run from `<target>/<profile>/deps`,
/// benchmark binaries from `<target>/<profile>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("the binary's directory");
    let dir = if dir.file_name().is_some_and(|name| name == "deps") { dir.parent().expect("<target>/<profile>") } else { dir };
    dir.to_path_buf()
}

/// The `tether` binary, built (or confirmed up to date) once per process with the same profile
/// as the caller. Cargo releases its build lock while tests run, so this is a no-op when
/// nothing changed.
///
/// A debug caller is `cargo test`: `--tests` selects the host's dev-dependencies as it does, so
/// features unify the same way and the binary reuses the libraries the test run built (without
/// it, a dev-dependency's extra features would rebuild tokio, wasmtime-wasi and the host a
/// second time); the host's test targets it also names are fresh by then. A release caller is
/// the benchmark harness, which built with `cargo build --release`, without dev-dependencies.
pub fn tether_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile_dir = profile_dir();
        let release = profile_dir.file_name().is_some_and(|name| name == "release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "--package", "host", "--bin", "tether"]);
        build.arg(if release { "--release" } else { "--tests" });
        let status = build.status().expect("running cargo build for the tether binary");
        assert!(status.success(), "building the tether binary failed");
        profile_dir.join("tether")
    })
}

/// What a test server logs: everything from info up, guest lines and access records included.
const LOG_ALL: &str = "info,tether::guest=info";
/// What a server under long load logs ([`Options::log`]): warnings and errors, and the lines the
/// harness waits for at start-up (`listening`), without a line per request: the dispatcher's
/// warning for each guest that traps or is refused an instance is left out too (the admin
/// listener's `/status` counts those requests by outcome).
pub const LOG_QUIET: &str = "warn,host::dispatch=error,host::server=info,host::admin=info";

/// How a test server is started, beyond its manifest.
#[derive(Clone, Debug, Default)]
pub struct Options<'a> {
    /// Extra `serve` arguments.
    pub args: &'a [&'a str],
    /// Caps the process's address space at this many KiB (`ulimit -v`), so that reserving
    /// memory fails as on an exhausted machine.
    pub address_space_kib: Option<u64>,
    /// The compile cache directory, instead of the tests' shared one.
    pub cache_dir: Option<PathBuf>,
    /// `TETHER_LOG`, instead of everything from info up.
    pub log: Option<&'a str>,
    /// More environment variables for the server.
    pub env: &'a [(&'a str, &'a str)],
}

/// A running `tether serve` with JSON logs.
pub struct Server {
    /// The child process.
    child: Child,
    /// The HTTP address, if it listens on TCP HTTP.
    pub http: Option<String>,
    /// The FastCGI address (`HOST:PORT` or `unix:/path`), if any.
    pub fastcgi: Vec<String>,
    /// Every log event so far.
    log: Arc<(Mutex<Vec<Value>>, Condvar)>,
    /// The directory of its manifest.
    pub dir: PathBuf,
}

impl Server {
    /// Starts a server with `manifest`. Unless the manifest has listeners, it listens for HTTP
    /// on an ephemeral port.
    pub fn start(manifest: &Manifest) -> Server {
        Self::start_with(manifest, &["--listen", "127.0.0.1:0"])
    }

    /// Starts a server with `manifest` and extra `serve` arguments.
    pub fn start_with(manifest: &Manifest, args: &[&str]) -> Server {
        Self::launch(Some(manifest), &Options { args, ..Options::default() })
    }

    /// Starts a server with `manifest` in a process whose address space the kernel caps at
    /// `kib` KiB (`ulimit -v`), so that reserving memory fails as on an exhausted machine.
    pub fn start_with_address_space(manifest: &Manifest, kib: u64) -> Server {
        Self::start_options(manifest, &Options { address_space_kib: Some(kib), ..Options::default() })
    }

    /// Starts a server with `manifest` as `options` say; unless they give listeners, it listens
    /// for HTTP on an ephemeral port.
    pub fn start_options(manifest: &Manifest, options: &Options) -> Server {
        let listens = options.args.iter().any(|a| *a == "--listen" || *a == "--fastcgi");
        let args: Vec<&str> = if listens { options.args.to_vec() } else { [&["--listen", "127.0.0.1:0"], options.args].concat() };
        Self::launch(Some(manifest), &Options { args: &args, ..options.clone() })
    }

    /// Starts a server with `manifest` that listens for FastCGI on an ephemeral TCP port and on
    /// a Unix socket, and for HTTP on an ephemeral port.
    pub fn start_fastcgi(manifest: &Manifest) -> Server {
        let unix = format!("unix:{}", socket_path().display());
        // nginx's workers run as another user: the socket must be open to them.
        let manifest = manifest.clone().server("socket_mode = 0o666");
        let args = ["--listen", "127.0.0.1:0", "--fastcgi", "127.0.0.1:0", "--fastcgi", &unix];
        Self::launch(Some(&manifest), &Options { args: &args, ..Options::default() })
    }

    /// The FastCGI TCP address (`127.0.0.1:PORT`).
    pub fn fastcgi_tcp(&self) -> &str {
        self.fastcgi.iter().find(|a| !a.starts_with("unix:")).expect("a FastCGI TCP listener")
    }

    /// The FastCGI Unix socket address (`unix:/path`).
    pub fn fastcgi_unix(&self) -> &str {
        self.fastcgi.iter().find(|a| a.starts_with("unix:")).expect("a FastCGI Unix listener")
    }

    /// Starts `tether serve` without a manifest (the built-in examples) on an ephemeral port,
    /// once its components are in the compile cache: the JavaScript and Python ones take longer
    /// than [`TIMEOUT`] to compile in a debug build.
    pub fn start_with_builtin() -> Server {
        compile(None);
        Self::launch(None, &Options { args: &["--listen", "127.0.0.1:0"], ..Options::default() })
    }

    /// Starts a server with the manifest file at `path`, listening for HTTP on an ephemeral
    /// port.
    pub fn start_file(path: &Path) -> Server {
        Self::start_file_with(path, &[])
    }

    /// Starts a server with the manifest file at `path` and the extra arguments `args`,
    /// listening for HTTP on an ephemeral port.
    pub fn start_file_with(path: &Path, args: &[&str]) -> Server {
        let args: Vec<&str> = ["--listen", "127.0.0.1:0"].iter().chain(args).copied().collect();
        Self::launch_file(Some(path), fresh_dir("server"), &Options { args: &args, ..Options::default() })
    }

    fn launch(manifest: Option<&Manifest>, options: &Options) -> Server {
        let dir = fresh_dir("server");
        let manifest_path = manifest.map(|manifest| {
            let path = dir.join("tether.toml");
            std::fs::write(&path, manifest.to_string()).expect("writing the manifest");
            path
        });
        Self::launch_file(manifest_path.as_deref(), dir, options)
    }

    fn launch_file(manifest: Option<&Path>, dir: PathBuf, options: &Options) -> Server {
        let args = options.args;
        let mut command = match options.address_space_kib {
            // The shell sets the limit and then becomes the server, with the arguments below.
            Some(kib) => {
                let mut shell = Command::new("/bin/sh");
                shell.args(["-c", &format!("ulimit -v {kib} && exec \"$0\" \"$@\"")]).arg(tether_bin());
                shell
            }
            None => Command::new(tether_bin()),
        };
        command.args(["--log-format", "json", "serve"]);
        if let Some(manifest) = manifest {
            command.arg(manifest);
        }
        command
            .arg("--cache-dir")
            .arg(options.cache_dir.clone().unwrap_or_else(|| scratch_dir().join("cache")))
            .args(args)
            .env("TETHER_LOG", options.log.unwrap_or(LOG_ALL))
            .envs(options.env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("starting tether");
        let stdout = child.stdout.take().expect("piped stdout");
        let log: Arc<(Mutex<Vec<Value>>, Condvar)> = Arc::default();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let event = serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({ "raw": line }));
                let (events, ready) = &*sink;
                events.lock().expect("log lock").push(event);
                ready.notify_all();
            }
            let (events, ready) = &*sink;
            events.lock().expect("log lock").push(serde_json::json!({ "message": "<server exited>" }));
            ready.notify_all();
        });
        let mut server = Server { child, http: None, fastcgi: Vec::new(), log, dir };
        let expected = args.iter().filter(|a| **a == "--listen" || **a == "--fastcgi").count().max(1);
        let listening = server.wait_for("the listening lines", |events| {
            let mut http = None;
            let mut fastcgi = Vec::new();
            for event in events {
                if event["message"] == "<server exited>" {
                    panic!("tether exited during start-up; log: {events:#?}");
                }
                if event["message"] == "listening" {
                    let addr = event["addr"].as_str().unwrap_or_default().to_owned();
                    match event["protocol"].as_str() {
                        Some("http") => http = Some(addr),
                        Some("fastcgi") => fastcgi.push(addr),
                        _ => {}
                    }
                }
            }
            (usize::from(http.is_some()) + fastcgi.len() >= expected).then_some((http, fastcgi))
        });
        (server.http, server.fastcgi) = listening;
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server holds now.
    pub fn usage(&self) -> Usage {
        Usage::of(self.pid())
    }

    /// Waits until the server holds no more file descriptors and threads than at `baseline`,
    /// and returns what it holds then. A thread of tokio's blocking pool (WASI's file calls)
    /// ends after ten idle seconds, within [`TIMEOUT`]; nothing the server logs says when, so
    /// this looks every [`POLL`].
    pub fn settles_to(&self, baseline: Usage) -> Usage {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let now = self.usage();
            if now.fds <= baseline.fds && now.threads <= baseline.threads {
                return now;
            }
            assert!(Instant::now() < deadline, "the server holds more than at {baseline:?} after {TIMEOUT:?}: {now:?}");
            std::thread::sleep(POLL);
        }
    }

    /// The HTTP address.
    pub fn addr(&self) -> &str {
        self.http.as_deref().expect("the server listens for HTTP")
    }

    /// Waits until `check` finds what it looks for in the log so far.
    pub fn wait_for<T>(&self, what: &str, check: impl FnMut(&[Value]) -> Option<T>) -> T {
        self.wait_for_since(0, what, check)
    }

    /// How many log events there are so far: a cursor for [`Server::wait_for_since`].
    pub fn log_len(&self) -> usize {
        self.log.0.lock().expect("log lock").len()
    }

    /// Like [`Server::wait_for`], looking only at events from index `since` on.
    pub fn wait_for_since<T>(&self, since: usize, what: &str, check: impl FnMut(&[Value]) -> Option<T>) -> T {
        self.try_wait_for_since(since, check)
            .unwrap_or_else(|recent| panic!("timed out waiting for {what}; the last {} log events: {recent:#?}", recent.len()))
    }

    /// Like [`Server::wait_for_since`], but a timeout returns the last log events instead of
    /// panicking, for callers that can say more about what went wrong.
    pub fn try_wait_for_since<T>(&self, since: usize, mut check: impl FnMut(&[Value]) -> Option<T>) -> Result<T, Vec<Value>> {
        let (events, ready) = &*self.log;
        let deadline = Instant::now() + TIMEOUT;
        let mut events = events.lock().expect("log lock");
        loop {
            if let Some(found) = check(&events[since.min(events.len())..]) {
                return Ok(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // Cloned, so that the caller's panic does not poison the log reader's lock.
                return Err(events[events.len().saturating_sub(FAILURE_LOG_EVENTS)..].to_vec());
            }
            events = ready.wait_timeout(events, left).expect("log lock").0;
        }
    }

    /// Waits for the first event from index `since` on for which `find` finds something, and
    /// returns that. Each event is looked at once, however often new events wake the wait:
    /// every row of the abort table waits on one server's log at once, under its lock.
    pub fn wait_for_event<T>(&self, since: usize, what: &str, mut find: impl FnMut(&Value) -> Option<T>) -> T {
        let mut seen = 0;
        self.wait_for_since(since, what, |events| {
            let found = events[seen..].iter().find_map(&mut find);
            seen = events.len();
            found
        })
    }

    /// A snapshot of the log.
    pub fn events(&self) -> Vec<Value> {
        self.log.0.lock().expect("log lock").clone()
    }

    /// Waits for the access record of the request whose target is `uri`.
    pub fn access(&self, uri: &str) -> Value {
        self.wait_for_event(0, &format!("the access record of {uri}"), |e| {
            (e["target"] == "tether::access" && e["uri"] == uri).then(|| e.clone())
        })
    }

    /// Waits for the access record of `uri` and returns it with every line its guest logged.
    pub fn finished(&self, uri: &str) -> (Value, Vec<String>) {
        let access = self.access(uri);
        let req = access["req"].as_u64().expect("a request id");
        (access, self.guest_lines(req))
    }

    /// Whether the access record of `uri` was logged before the line of request `req` that
    /// starts with `prefix` (both must be in the log already): the log is one ordered stream.
    pub fn access_logged_before(&self, uri: &str, req: u64, prefix: &str) -> bool {
        let events = self.events();
        let access = events.iter().position(|e| e["target"] == "tether::access" && e["uri"] == uri);
        let line = events.iter().position(|e| {
            e["target"] == "tether::guest" && e["req"] == req && e["message"].as_str().is_some_and(|m| m.starts_with(prefix))
        });
        match (access, line) {
            (Some(access), Some(line)) => access < line,
            _ => panic!("the access record of {uri} or the line `{prefix}` of request {req} is not in the log"),
        }
    }

    /// Whether the access record of `uri` is already in the log.
    pub fn has_access(&self, uri: &str) -> bool {
        self.events().iter().any(|e| e["target"] == "tether::access" && e["uri"] == uri)
    }

    /// Waits until the guest of request `req` logged a line starting with `prefix`.
    pub fn guest_line(&self, req: u64, prefix: &str) -> String {
        self.wait_for_event(0, &format!("guest line `{prefix}` of request {req}"), |e| {
            let message = e["message"].as_str().filter(|m| m.starts_with(prefix));
            message.filter(|_| e["target"] == "tether::guest" && e["req"] == req).map(str::to_owned)
        })
    }

    /// Every line the guest of request `req` logged so far.
    pub fn guest_lines(&self, req: u64) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["target"] == "tether::guest" && e["req"] == req)
            .filter_map(|e| e["message"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits for the first guest line of a request to `route` and returns that request's id.
    pub fn started(&self, route: &str) -> u64 {
        self.wait_for_event(0, &format!("a request on {route} to start"), |e| {
            (e["target"] == "tether::guest" && e["route"] == route).then(|| e["req"].as_u64()).flatten()
        })
    }

    /// Waits for the first guest line, from log position `mark` on, of a request on `route` newer
    /// than every request logged before `mark`, and returns that request's id. Request ids grow
    /// in the order requests arrive, so this is a request sent after `mark` was taken.
    pub fn started_since(&self, mark: usize, route: &str) -> u64 {
        let events = self.events();
        let older = events[..mark.min(events.len())].iter().filter_map(|e| e["req"].as_u64()).max();
        self.wait_for_event(mark, &format!("a request on {route} sent after log event {mark} to start"), |e| {
            let req = e["req"].as_u64().filter(|&req| older.is_none_or(|older| req > older));
            req.filter(|_| e["target"] == "tether::guest" && e["route"] == route)
        })
    }

    /// The admin listener's address (`[server] admin`), once it listens.
    pub fn admin(&self) -> String {
        self.wait_for("the admin listener", |events| {
            events
                .iter()
                .find(|e| e["message"] == "listening" && e["protocol"] == "admin")
                .and_then(|e| e["addr"].as_str().map(str::to_owned))
        })
    }

    /// Sends SIGHUP and waits for the reload it starts to end: `Ok` with the new generation's
    /// number, or `Err` with the error the server logged (the generation in force stays).
    pub fn reload(&self) -> Result<u64, String> {
        let mark = self.log_len();
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("sending SIGHUP");
        self.wait_for_since(mark, "the reload to end", |events| {
            events.iter().find_map(|e| match e["message"].as_str()? {
                RELOADED => Some(Ok(e["generation"].as_u64().expect("a generation number"))),
                RELOAD_FAILED => Some(Err(e["error"].as_str().expect("an error").to_owned())),
                _ => None,
            })
        })
    }

    /// Sends SIGTERM: the server's graceful shutdown.
    pub fn terminate(&self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("sending SIGTERM");
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        self.child.wait().expect("waiting for tether").code()
    }

    /// Sends SIGKILL and waits for the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        // A killed server leaves its Unix sockets' files behind, in the system's temp directory.
        for path in self.fastcgi.iter().filter_map(|addr| addr.strip_prefix("unix:")) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How often a wait for a condition nothing announces (a process's file descriptors and
/// threads) looks again.
pub const POLL: Duration = Duration::from_millis(20);

/// What a process holds: open file descriptors, threads and resident memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Entries of `/proc/PID/fd`.
    pub fds: usize,
    /// Entries of `/proc/PID/task`.
    pub threads: usize,
    /// `VmRSS` of `/proc/PID/status`, in KiB.
    pub rss_kib: u64,
}

impl Usage {
    /// What process `pid` holds now.
    pub fn of(pid: u32) -> Usage {
        let entries = |dir: &str| std::fs::read_dir(format!("/proc/{pid}/{dir}")).map_or(0, Iterator::count);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        Usage { fds: entries("fd"), threads: entries("task"), rss_kib }
    }
}

/// A raw HTTP/1.1 client connection.
pub struct Client {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lowercased) and values.
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: Vec<u8>,
    /// Whether a chunked body ended with its terminating chunk (always true otherwise).
    pub complete: bool,
}

impl Response {
    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    /// Connects with a read timeout of [`TIMEOUT`].
    pub fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connecting to the server");
        stream.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
        stream.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client { stream, buf: Vec::new() }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).expect("sending");
    }

    /// Sends `GET path` on HTTP/1.1.
    pub fn get(&mut self, path: &str) {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"));
    }

    /// Reads more bytes; false at EOF or on a reset.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock || error.kind() == std::io::ErrorKind::TimedOut => {
                panic!("no data from the server within {TIMEOUT:?}")
            }
            Err(_) => false,
        }
    }

    /// Whether nothing arrives for `quiet`: the server has not answered, and (as far as that
    /// long can tell) is not about to. Anything that arrives stays buffered.
    pub fn silent_for(&mut self, quiet: Duration) -> bool {
        self.stream.set_read_timeout(Some(quiet)).expect("read timeout");
        let mut chunk = [0u8; 64 * 1024];
        let silent = match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                false
            }
            Err(error) => matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        };
        self.stream.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
        silent
    }

    /// Reads until `needle` is buffered and returns the bytes up to and including it.
    pub fn read_until(&mut self, needle: &[u8]) -> Vec<u8> {
        loop {
            if let Some(i) = self.buf.windows(needle.len()).position(|w| w == needle) {
                return self.buf.drain(..i + needle.len()).collect();
            }
            assert!(
                self.fill(),
                "connection ended before {:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill(), "connection ended after {} of {n} bytes", self.buf.len());
        }
        self.buf.drain(..n).collect()
    }

    /// Reads until the server closes; returns what arrived.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill() {}
        std::mem::take(&mut self.buf)
    }

    /// Whether the server closed the connection (reads until EOF, which must come before
    /// [`TIMEOUT`]), having sent nothing more.
    pub fn closed_by_server(&mut self) -> bool {
        self.read_to_end().is_empty()
    }

    /// Reads the status line and headers.
    pub fn read_head(&mut self) -> (u16, Vec<(String, String)>) {
        let head = self.read_until(b"\r\n\r\n");
        let text = String::from_utf8(head).expect("a UTF-8 response head");
        let mut lines = text.split("\r\n");
        let status_line = lines.next().expect("a status line");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        assert!(version.starts_with("HTTP/1."), "bad status line {status_line:?}");
        let status = parts.next().and_then(|s| s.parse().ok()).expect("a status code");
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, value) = l.split_once(':').expect("a header line");
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        (status, headers)
    }

    /// Reads one chunk of a chunked body; `None` for the last chunk (after its trailer CRLF).
    pub fn read_chunk(&mut self) -> Option<Vec<u8>> {
        let line = self.read_until(b"\r\n");
        let size_text = String::from_utf8_lossy(&line[..line.len() - 2]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).expect("a chunk size");
        if size == 0 {
            self.read_until(b"\r\n");
            return None;
        }
        let data = self.read_exact(size);
        assert_eq!(self.read_exact(2), b"\r\n", "chunk data must end with CRLF");
        Some(data)
    }

    /// Reads one whole response (to a request that is not HEAD).
    pub fn read_response(&mut self) -> Response {
        self.read_response_to(false)
    }

    /// Reads one whole response; `head_request` means no body follows the head.
    pub fn read_response_to(&mut self, head_request: bool) -> Response {
        let (status, headers) = self.read_head();
        let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let mut complete = true;
        let body = if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
            Vec::new()
        } else if find("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
            let mut body = Vec::new();
            loop {
                if self.buf.is_empty() && !self.fill() {
                    complete = false;
                    break;
                }
                match self.try_chunk() {
                    Some(Some(data)) => body.extend_from_slice(&data),
                    Some(None) => break,
                    None => {
                        complete = false;
                        break;
                    }
                }
            }
            body
        } else if let Some(length) = find("content-length") {
            self.read_exact(length.parse().expect("a numeric content-length"))
        } else {
            self.read_to_end()
        };
        Response { status, headers, body, complete }
    }

    /// Like [`Client::read_chunk`], but `None` if the connection ends mid-body.
    fn try_chunk(&mut self) -> Option<Option<Vec<u8>>> {
        let line = loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                break self.buf.drain(..i + 2).collect::<Vec<u8>>();
            }
            if !self.fill() {
                return None;
            }
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&line[..line.len() - 2]).trim(), 16).ok()?;
        while self.buf.len() < size + 2 {
            if !self.fill() {
                return None;
            }
        }
        let data: Vec<u8> = self.buf.drain(..size).collect();
        self.buf.drain(..2);
        Some((size > 0).then_some(data))
    }

    /// Closes with FIN: drops unread bytes first, so the kernel sends FIN rather than RST.
    pub fn close_fin(self) {
        self.stream.set_nonblocking(true).expect("nonblocking");
        let mut scratch = [0u8; 64 * 1024];
        while matches!((&self.stream).read(&mut scratch), Ok(n) if n > 0) {}
        drop(self.stream);
    }

    /// Closes with RST (`SO_LINGER {1, 0}`).
    pub fn close_rst(self) {
        socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO)).expect("linger");
        drop(self.stream);
    }

    /// Shuts down the write side (half-close); the client can still read.
    pub fn half_close(&self) {
        self.stream.shutdown(Shutdown::Write).expect("shutdown");
    }

    /// Leaves `how`; after a half-close the client is returned, still open for reading.
    pub fn close(self, how: Close) -> Option<Client> {
        match how {
            Close::Fin => self.close_fin(),
            Close::Rst => self.close_rst(),
            Close::Half => {
                self.half_close();
                return Some(self);
            }
        }
        None
    }
}

/// A one-shot `GET path` on a new connection.
pub fn get(addr: &str, path: &str) -> Response {
    let mut client = Client::connect(addr);
    client.get(path);
    client.read_response()
}

/// Runs `check` on every row at once, each on a thread of its own named `name(row)`, and
/// panics listing every row that failed (returned an error or panicked), so that one run shows
/// every failure of a table.
pub fn run_rows<R: Sync>(rows: &[R], name: impl Fn(&R) -> String, check: impl Fn(&R) -> Result<(), String> + Sync) {
    let failures: Vec<String> = std::thread::scope(|scope| {
        let running: Vec<_> = rows
            .iter()
            .map(|row| {
                let check = &check;
                let thread = std::thread::Builder::new().name(name(row));
                (row, thread.spawn_scoped(scope, move || check(row)).expect("starting a row's thread"))
            })
            .collect();
        running
            .into_iter()
            .filter_map(|(row, thread)| match thread.join() {
                Ok(Ok(())) => None,
                Ok(Err(failure)) => Some(format!("{}: {failure}", name(row))),
                Err(panic) => Some(format!(
                    "{}: panicked: {}",
                    name(row),
                    panic.downcast_ref::<String>().map(String::as_str).or(panic.downcast_ref::<&str>().copied()).unwrap_or("?")
                )),
            })
            .collect()
    });
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

/// A manifest for a test server: `[server]` settings and routes. Every test file builds its
/// manifest with it, so that settings a server constructor adds (the FastCGI socket's mode)
/// land in the same `[server]` table as the test's own.
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    /// The `key = value` lines of the `[server]` table.
    server: String,
    /// The `[[route]]` tables.
    routes: String,
}

impl Manifest {
    /// An empty manifest: no settings, no routes.
    pub fn new() -> Manifest {
        Manifest::default()
    }

    /// Adds a `[server]` setting, one `key = value` line.
    pub fn server(mut self, setting: &str) -> Manifest {
        self.server += setting;
        self.server.push('\n');
        self
    }

    /// Adds a route on `path` to the built guest `guest_name` (see [`guest`]), with `extra`:
    /// lines of the route's table, then any sub-tables of it (`[route.env]`, `[[route.preopen]]`).
    pub fn route(self, path: &str, guest_name: &str, extra: &str) -> Manifest {
        self.route_to(path, &guest(guest_name), extra)
    }

    /// Adds a route on `path` to the component file `component`, with `extra` as for
    /// [`Manifest::route`].
    pub fn route_to(mut self, path: &str, component: &str, extra: &str) -> Manifest {
        self.routes += &format!("[[route]]\npath = \"{path}\"\ncomponent = \"{component}\"\n{extra}\n");
        self
    }

    /// Adds a route for each `(path, guest, extra settings)`, as [`Manifest::route`] does.
    pub fn routes(self, routes: &[(&str, &str, &str)]) -> Manifest {
        routes.iter().fold(self, |manifest, (path, guest_name, extra)| manifest.route(path, guest_name, extra))
    }

    /// Adds routes for each `(path, guest, extra settings)` in both abort detection modes:
    /// `/p<path>` with `prompt`, `/w<path>` with `write`.
    pub fn in_both_modes(mut self, fixtures: &[(&str, &str, &str)]) -> Manifest {
        for (prefix, mode) in [("/p", "prompt"), ("/w", "write")] {
            for (path, guest_name, extra) in fixtures {
                self = self.route(&format!("{prefix}{path}"), guest_name, &format!("abort_detection = \"{mode}\"\n{extra}"));
            }
        }
        self
    }
}

impl std::fmt::Display for Manifest {
    /// The manifest's TOML text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.server.is_empty() {
            writeln!(f, "[server]\n{}", self.server)?;
        }
        f.write_str(&self.routes)
    }
}

/// How a client leaves a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// `close()` with nothing unread: the kernel sends FIN.
    Fin,
    /// `close()` with `SO_LINGER {1, 0}`: the kernel sends RST.
    Rst,
    /// `shutdown(SHUT_WR)`: FIN, and the client can still read.
    Half,
}

impl Close {
    /// Every way of leaving.
    pub const ALL: [Close; 3] = [Close::Fin, Close::Rst, Close::Half];

    /// Its name, as rows and failures spell it.
    pub fn name(self) -> &'static str {
        match self {
            Close::Fin => "fin",
            Close::Rst => "rst",
            Close::Half => "half-close",
        }
    }
}

/// A client that left while the guest of its request ran ([`leave_after_line`]).
pub struct Left {
    /// The request's id.
    pub req: u64,
    /// After a half-close, the client, still open for reading; dropping it closes it.
    pub client: Option<Client>,
}

/// Sends `GET uri` on a new connection to `addr` (Tether's HTTP listener or an nginx in front
/// of it), waits until the guest of that request, on `route`, logs a line starting with `line`,
/// and leaves `how` right then. The guest's sleep after that line is the window the close must
/// land in. Requests on `route` that logged before this one was sent are not taken for it.
pub fn leave_after_line(server: &Server, addr: &str, uri: &str, route: &str, line: &str, how: Close) -> Left {
    let mark = server.log_len();
    let mut client = Client::connect(addr);
    client.get(uri);
    let req = server.started_since(mark, route);
    server.guest_line(req, line);
    Left { req, client: client.close(how) }
}

/// Whether some guest line starts with `prefix`.
pub fn has(lines: &[String], prefix: &str) -> bool {
    lines.iter().any(|l| l.starts_with(prefix))
}

/// The first guest line starting with `prefix` (panics if there is none).
pub fn line<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines.iter().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no `{prefix}` in {lines:?}"))
}

/// The guest's logged status (`cs=N`) in a line, if any.
pub fn cs(line: &str) -> Option<u8> {
    line.split_whitespace().find_map(|w| w.strip_prefix("cs=")).and_then(|v| v.parse().ok())
}
