//! The client-abort table: every row is a guest (a seed of the PHP-FPM reference, in one
//! language), an abort detection mode, a front end, a way for the client to leave, and
//! ignore-user-abort on or off; each row says how the request must end and every line its
//! guest must log, with the `connection_status` it read at each step.
//!
//! The expectations are written once, as rules: [`notice`] says when a guest learns that its
//! client left (the reference's socket rules, ../shared/reference/php-fpm/RESULTS.md), and
//! [`Row::expected`] plays the seed's script ([`Seed::script`]) under that rule. A row then runs
//! as one request against the real server, and [`run`] runs every row of a front end
//! concurrently on one server, naming each row that failed.
//!
//! Languages are a column: a seed written in another language is one more [`Lang`], whose
//! components log the same lines. So is the world: [`Lang::WasiHttp`] is a wasi:http proxy
//! component serving the same seeds, with ignore-user-abort as its route's setting, one for
//! each toolchain that builds one ([`Toolchain`]). PHP is one more: the seeds as a PHP script
//! on a `builtin:php` route, which PHP itself runs.

use crate::nginx::{self, Nginx};
use crate::proxy::Toolchain;
use crate::{Close, Manifest, Server, guest, lang_guest, leave_after_line};

/// The language a guest is written in, and the world it is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// `guest/examples/*.rs` and `guest/fixtures/*.rs`, built by `host/build.rs`: one
    /// component per seed.
    Rust,
    /// `guest/examples/js/seeds.js` with the JavaScript SDK, built by `scripts/build-langs` (which
    /// `host/build.rs` runs):
    /// one component serving every seed, picked by the last path segment.
    Js,
    /// `guest/examples/python/seeds.py` with the Python SDK, likewise.
    Python,
    /// `guest/examples/c/seeds.c` with the C SDK, likewise.
    C,
    /// `guest/examples/php/seeds.php`, run by PHP itself (`builtin:php`), which serves it for
    /// every path on its route; the last path segment picks the seed.
    Php,
    /// A wasi:http proxy component serving every seed, built by `toolchain`
    /// (`guest/fixtures/proxy.rs` in Rust, `guest/examples/python/proxy.py` in Python); it reads
    /// its connection status through Tether's `conn`, and cannot ignore user aborts itself.
    WasiHttp(Toolchain),
}

impl Lang {
    /// Every language the seeds are written in.
    pub const ALL: [Lang; 7] =
        [Lang::Rust, Lang::Js, Lang::Python, Lang::C, Lang::Php, Lang::WasiHttp(Toolchain::Rust), Lang::WasiHttp(Toolchain::Python)];

    /// Its name, as rows and routes spell it (and `scripts/build-langs` names its output).
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Js => "js",
            Lang::Python => "python",
            Lang::C => "c",
            Lang::Php => "php",
            Lang::WasiHttp(Toolchain::Rust) => "wasi-http-rust",
            Lang::WasiHttp(Toolchain::Python) => "wasi-http-python",
        }
    }

    /// The route settings a row in this language needs: a wasi:http component's route sets
    /// ignore-user-abort (Tether guests call it themselves, as the row's query asks them to);
    /// a PHP route names the seeds' script and preopens its directory as the document root.
    /// Last in the route: they may open a subtable.
    fn settings(self, iua: bool) -> String {
        match (self, iua) {
            (Lang::WasiHttp(_), true) => "ignore_user_abort = true\n".to_owned(),
            (Lang::Php, _) => crate::php_document_root(&php_examples(), "/www", &[("SCRIPT_NAME", "/seeds.php")]),
            _ => String::new(),
        }
    }

    /// The built component of `seed` in this language.
    pub fn component(self, seed: Seed) -> String {
        match self {
            Lang::Rust => guest(match seed {
                Seed::A => "seed_a",
                Seed::A2 => "seed_a2",
                Seed::B => "seed_b",
                Seed::Finish => "finish",
            }),
            Lang::Js | Lang::Python | Lang::C => lang_guest(self.name(), "seeds"),
            Lang::Php => "builtin:php".to_owned(),
            Lang::WasiHttp(toolchain) => toolchain.component(),
        }
    }
}

/// The directory of the PHP seeds' script, `guest/examples/php`, which a PHP row's route
/// preopens as its document root.
fn php_examples() -> std::path::PathBuf {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace");
    workspace.join("guest/examples/php")
}

/// A guest script whose behaviour under a client abort the reference measured under PHP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seed {
    /// Log, sleep, log: no output (RESULTS.md's A1).
    A,
    /// Write and flush 5 bytes, log, sleep, log, four times (A2, with `output_buffering=0`).
    A2,
    /// Sleep, write 4 KiB, log, flush, six times (B).
    B,
    /// Answer, `finish-request`, sleep, log (`fastcgi_finish_request()`, fact 10).
    Finish,
}

/// One step of a seed's script, as [`Row::expected`] plays it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The guest logs `<label> cs=<connection_status>`.
    Status(String),
    /// The guest writes, flushes and logs `<label> cs=<status> flush=<result>`.
    Flush(String),
    /// The guest logs `stop <i>` if its connection is aborted.
    StopIfAborted(u32),
    /// The guest ends its response (`finish-request`): a client leaving after it leaves no
    /// request behind.
    Finish,
    /// The client leaves here, during the sleep after the previous line.
    Leave,
}

impl Seed {
    /// Every seed.
    pub const ALL: [Seed; 4] = [Seed::A, Seed::A2, Seed::B, Seed::Finish];

    /// Its name, as rows and routes spell it.
    pub fn name(self) -> &'static str {
        match self {
            Seed::A => "a",
            Seed::A2 => "a2",
            Seed::B => "b",
            Seed::Finish => "finish",
        }
    }

    /// Its name among the examples: the last path segment that picks it in a component serving
    /// every seed.
    fn example(self) -> &'static str {
        match self {
            Seed::A => "seed-a",
            Seed::A2 => "seed-a2",
            Seed::B => "seed-b",
            Seed::Finish => "finish",
        }
    }

    /// The query that sets its timing. The sleep in which the client leaves is 1.5 s long: a
    /// window for the close to land in, never waited out by a trapped guest. The later sleeps
    /// (150 and 100 ms) only space the writes, which a reset on loopback arrives well within.
    fn query(self) -> &'static str {
        match self {
            Seed::A => "ms=1500",
            Seed::A2 => "n=4&first_ms=1500&ms=150",
            Seed::B => "first_ms=1500&ms=100",
            Seed::Finish => "ms=1000",
        }
    }

    /// Route settings the seed needs: seed B's 4 KiB writes leave at its flushes, as the
    /// reference script's `ob_start()` has them.
    fn settings(self) -> &'static str {
        match self {
            Seed::B => "output_buffer = \"64KiB\"\n",
            Seed::A | Seed::A2 | Seed::Finish => "",
        }
    }

    /// What the guest does, step by step, and where the client leaves (its source is in
    /// `guest/examples/seed_*.rs` and `guest/fixtures/finish.rs`).
    pub fn script(self) -> Vec<Step> {
        let status = |label: String| Step::Status(label);
        match self {
            Seed::A => vec![status("start".into()), Step::Leave, status("end".into())],
            Seed::A2 => {
                let mut steps = vec![status("start".into())];
                for i in 1..=4 {
                    steps.push(Step::Flush(format!("w {i}")));
                    if i == 1 {
                        steps.push(Step::Leave);
                    }
                    steps.push(status(format!("iter {i}")));
                }
                steps.push(status("end".into()));
                steps
            }
            Seed::B => {
                let mut steps = vec![status("start".into()), Step::Leave];
                for i in 0..6 {
                    steps.extend([status(format!("iter {i}")), Step::StopIfAborted(i), Step::Flush(format!("w {i}"))]);
                }
                steps.push(status("done".into()));
                steps
            }
            Seed::Finish => {
                vec![Step::Finish, status("finished true".into()), Step::Leave, status("after_sleep".into()), status("end".into())]
            }
        }
    }

    /// The line after which the client leaves: the last one logged before [`Step::Leave`].
    fn leave_after(self) -> String {
        let script = self.script();
        let leave = script.iter().position(|step| *step == Step::Leave).expect("every script has the client leave");
        script[..leave]
            .iter()
            .rev()
            .find_map(|step| match step {
                Step::Status(label) | Step::Flush(label) => Some(label.clone()),
                Step::StopIfAborted(_) | Step::Finish | Step::Leave => None,
            })
            .expect("a line before the client leaves")
    }
}

/// A guest: a seed in a language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guest {
    /// The language it is written in.
    pub lang: Lang,
    /// The script it runs.
    pub seed: Seed,
}

/// The route's `abort_detection`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The host watches the connection while the guest runs.
    Prompt,
    /// PHP's: only a failing write tells.
    Write,
}

impl Mode {
    /// Both modes.
    pub const ALL: [Mode; 2] = [Mode::Prompt, Mode::Write];

    /// The manifest's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Prompt => "prompt",
            Mode::Write => "write",
        }
    }
}

/// How the client reaches Tether.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// HTTP straight to Tether.
    Http,
    /// nginx (default `fastcgi_ignore_client_abort off`, `fastcgi_buffering on`) passing
    /// FastCGI over TCP.
    NginxTcp,
    /// The same nginx, over a Unix socket.
    NginxUnix,
}

impl Transport {
    /// Every front end and socket type.
    pub const ALL: [Transport; 3] = [Transport::Http, Transport::NginxTcp, Transport::NginxUnix];

    /// Its name, as rows spell it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::NginxTcp => "nginx-tcp",
            Transport::NginxUnix => "nginx-unix",
        }
    }

    /// Starts a server for `manifest` and, for FastCGI, an nginx passing to it (its default
    /// abort settings), and returns them with the address clients connect to. The nginx runs as
    /// long as it is kept.
    pub fn serve(self, manifest: &Manifest) -> (Server, Option<Nginx>, String) {
        match self {
            Transport::Http => {
                let server = Server::start(manifest);
                let addr = server.addr().to_owned();
                (server, None, addr)
            }
            Transport::NginxTcp | Transport::NginxUnix => {
                let server = Server::start_fastcgi(manifest);
                let upstream = if self == Transport::NginxTcp { server.fastcgi_tcp() } else { server.fastcgi_unix() };
                let nginx = Nginx::start("", &[nginx::pass(upstream, false, true)]);
                let addr = nginx.addr(0);
                (server, Some(nginx), addr)
            }
        }
    }
}

/// When a guest learns that its client left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// At once: the host sees the close while the guest runs.
    AtOnce,
    /// Inside the `n`th write after the close, which fails.
    AtWrite(u32),
    /// Never.
    Never,
}

/// When a guest in `mode` behind `transport` learns that its client left `how`.
///
/// In prompt mode the host watches the socket: at once (nginx closes its upstream link on the
/// client's FIN, RST or bare half-close alike, RESULTS.md fact 1). In write mode only a failing
/// write tells, as under PHP (fact 2): a socket whose peer reset fails the first write, and so
/// does a Unix socket whose peer closed (EPIPE); over TCP after a FIN, the first write succeeds
/// and draws the RST, and the second fails. nginx closes its upstream link with a FIN whatever
/// the client did. A half-closed client still reads, so writes to it succeed.
pub fn notice(mode: Mode, transport: Transport, how: Close) -> Notice {
    match (mode, transport, how) {
        (Mode::Prompt, _, _) => Notice::AtOnce,
        (Mode::Write, Transport::Http, Close::Half) => Notice::Never,
        (Mode::Write, Transport::Http, Close::Rst) | (Mode::Write, Transport::NginxUnix, _) => Notice::AtWrite(1),
        (Mode::Write, Transport::Http, Close::Fin) | (Mode::Write, Transport::NginxTcp, _) => Notice::AtWrite(2),
    }
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// The guest.
    pub guest: Guest,
    /// Its route's abort detection.
    pub mode: Mode,
    /// How the client reaches Tether.
    pub transport: Transport,
    /// How the client leaves.
    pub close: Close,
    /// Whether the guest ignores user aborts from the start (it calls `ignore_user_abort(true)`
    /// first, or its route says so).
    pub iua: bool,
    /// Whether the guest asks for aborted writes to be reported to it rather than trap it
    /// (`conn.report-aborted-writes`, which only write mode honours): the seeds do when their
    /// query says `report=1`, PHP's server API always.
    pub report: bool,
}

/// How a row's request must end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The access record's `outcome`.
    pub outcome: &'static str,
    /// Every line the guest logs, in order; a trapped guest's end where it died.
    pub lines: Vec<String>,
    /// Whether any of the response reached the socket (the access record's `bytes` is not 0).
    pub sent: bool,
    /// The access record's `status`: 200 once bytes were sent, else 499 (the client left
    /// before any of the response reached it).
    pub status: u16,
}

/// A seed's script being played ([`Row::expected`]).
struct Play {
    /// When the guest learns that its client left.
    notice: Notice,
    /// Whether the guest ignores user aborts.
    iua: bool,
    /// Whether the client has left its request (not after `finish-request`).
    left: bool,
    /// Whether the guest has been told (`connection_status` 1).
    aborted: bool,
    /// Whether the guest called `finish-request`.
    finished: bool,
    /// Writes tried on the socket since the client left.
    writes_after_leaving: u32,
    /// Whether any write reached it.
    sent: bool,
    /// The guest's lines so far.
    lines: Vec<String>,
}

impl Play {
    /// The guest logs `<label> cs=N` and `rest`.
    fn log(&mut self, label: &str, rest: &str) {
        self.lines.push(format!("{label} cs={}{rest}", u8::from(self.aborted)));
    }

    /// A write on the socket: it reaches it, unless it is the write after the client left
    /// that fails, which aborts the request. Returns whether it reached it.
    fn write(&mut self) -> bool {
        if self.left {
            self.writes_after_leaving += 1;
            if self.notice == Notice::AtWrite(self.writes_after_leaving) {
                self.aborted = true;
                return false;
            }
        }
        self.sent = true;
        true
    }

    /// How the request ends, as `outcome`.
    fn end(self, outcome: &'static str) -> Expected {
        let status = if self.sent { 200 } else { 499 };
        Expected { outcome, lines: self.lines, sent: self.sent, status }
    }
}

impl Row {
    /// The row's name, for failures: `rust a2 write nginx-tcp fin iua=1 report=0`.
    pub fn name(&self) -> String {
        format!(
            "{} {} {} {} {} iua={} report={}",
            self.guest.lang.name(),
            self.guest.seed.name(),
            self.mode.name(),
            self.transport.name(),
            self.close.name(),
            u8::from(self.iua),
            u8::from(self.report)
        )
    }

    /// The row's own route (each front end has its own server, so the transport is not in it).
    /// It ends with the seed's name as the examples spell it, which picks the behaviour of a
    /// component that serves every seed.
    fn route(&self) -> String {
        format!(
            "/{}/{}/{}/iua{}-report{}/{}",
            self.guest.lang.name(),
            self.mode.name(),
            self.close.name(),
            u8::from(self.iua),
            u8::from(self.report),
            self.guest.seed.example()
        )
    }

    /// The request target.
    fn uri(&self) -> String {
        let (iua, report) = (u8::from(self.iua), u8::from(self.report));
        format!("{}?{}&iua={iua}&report={report}", self.route(), self.guest.seed.query())
    }

    /// Whether a write that fails is reported to the guest instead of trapping it.
    fn reported(&self) -> bool {
        self.report && self.mode == Mode::Write
    }

    /// Plays the seed's script with the client leaving where it says, under [`notice`]'s rule,
    /// and then the host's end of the response.
    pub fn expected(&self) -> Expected {
        let notice = notice(self.mode, self.transport, self.close);
        let mut play = Play {
            notice,
            iua: self.iua,
            left: false,
            aborted: false,
            finished: false,
            writes_after_leaving: 0,
            sent: false,
            lines: Vec::new(),
        };
        for step in self.guest.seed.script() {
            match step {
                Step::Leave => {
                    play.left = !play.finished;
                    if play.left && notice == Notice::AtOnce {
                        play.aborted = true;
                        if !play.iua {
                            return play.end("aborted-trapped");
                        }
                    }
                }
                Step::Status(label) => play.log(&label, ""),
                Step::StopIfAborted(i) => {
                    if play.aborted {
                        play.lines.push(format!("stop {i}"));
                    }
                }
                Step::Flush(label) => {
                    // Once aborted, the host refuses output without trying the socket.
                    if !play.aborted && !play.write() && !play.iua {
                        if !self.reported() {
                            return play.end("aborted-trapped");
                        }
                        // PHP bails out of the script there; the other seeds run on.
                        if self.guest.lang == Lang::Php {
                            return play.end("aborted-returned");
                        }
                    }
                    let flush = if play.aborted { "Err(\"aborted\")" } else { "Ok(())" };
                    play.log(&label, &format!(" flush={flush}"));
                }
                Step::Finish => {
                    play.write();
                    play.finished = true;
                }
            }
        }
        if play.finished {
            return play.end("finished-early");
        }
        // The host then ends the response: one more write, unless aborted (all of the response,
        // for a guest that wrote nothing). If that write fails, the guest still ran to its end
        // without being told: the request completed, and nothing reached the client.
        let outcome = match (play.aborted, self.reported() && !play.iua) {
            (false, _) => "completed",
            (true, false) => "aborted-ignored",
            (true, true) => "aborted-returned",
        };
        if !play.aborted {
            play.write();
        }
        play.end(outcome)
    }
}

/// Every row: each language's seeds × mode × transport × way of leaving × ignore-user-abort.
pub fn table() -> Vec<Row> {
    let mut rows = Vec::new();
    for lang in Lang::ALL {
        for seed in Seed::ALL {
            for mode in Mode::ALL {
                for transport in Transport::ALL {
                    for close in Close::ALL {
                        for iua in [false, true] {
                            rows.push(Row { guest: Guest { lang, seed }, mode, transport, close, iua, report: lang == Lang::Php });
                        }
                        // Seed A2 in the SDKs' languages once more, asking for reported writes.
                        if seed == Seed::A2 && matches!(lang, Lang::Rust | Lang::Js | Lang::Python | Lang::C) {
                            rows.push(Row { guest: Guest { lang, seed }, mode, transport, close, iua: false, report: true });
                        }
                    }
                }
            }
        }
    }
    rows
}

/// Runs every row of `transport` at once, each its own request on one server (behind one
/// nginx for FastCGI), and panics listing every row that failed.
pub fn run(transport: Transport) {
    // One front end's table at a time: each puts every one of its rows in flight at once, and
    // three such loads together on two cores would stretch the windows the rows' closes must
    // land in.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    compile_once();
    let rows: Vec<Row> = table().into_iter().filter(|row| row.transport == transport).collect();
    let manifest = rows.iter().fold(Manifest::new(), |manifest, row| {
        let settings =
            format!("abort_detection = \"{}\"\n{}{}", row.mode.name(), row.guest.seed.settings(), row.guest.lang.settings(row.iua));
        manifest.route_to(&row.route(), &row.guest.lang.component(row.guest.seed), &settings)
    });
    let (server, _nginx, addr) = transport.serve(&manifest);
    crate::run_rows(&rows, Row::name, |row| check(&server, &addr, row));
}

/// Compiles every language's components into the tests' compile cache once per process, so
/// that the servers of the transports, started at once, load them from it instead of each
/// compiling the large JavaScript and Python components again.
fn compile_once() {
    static COMPILED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    COMPILED.get_or_init(|| {
        let manifest = Lang::ALL
            .iter()
            .fold(Manifest::new(), |manifest, lang| manifest.route_to(&format!("/{}", lang.name()), &lang.component(Seed::A), ""));
        crate::compile_ahead(&manifest);
    });
}

/// Runs `row` as one request through `addr` and compares how it ended with its expectation.
fn check(server: &Server, addr: &str, row: &Row) -> Result<(), String> {
    let (route, uri) = (row.route(), row.uri());
    let left = leave_after_line(server, addr, &uri, &route, &row.guest.seed.leave_after(), row.close);
    let access = server.access(&uri);
    // A half-closed client stays until its request has ended.
    drop(left.client);
    let lines = server.guest_lines(left.req);
    let expected = row.expected();
    let mut problems = Vec::new();
    if access["outcome"] != expected.outcome {
        problems.push(format!("outcome {} (expected {})", access["outcome"], expected.outcome));
    }
    if lines != expected.lines {
        problems.push(format!("guest lines\n    {lines:?}\n  expected\n    {:?}", expected.lines));
    }
    let protocol = if row.transport == Transport::Http { "http" } else { "fastcgi" };
    if access["protocol"] != protocol {
        problems.push(format!("protocol {} (expected {protocol})", access["protocol"]));
    }
    let bytes = access["bytes"].as_u64().unwrap_or(0);
    if (bytes > 0) != expected.sent {
        problems.push(format!("{bytes} bytes sent (expected {})", if expected.sent { "some" } else { "none" }));
    }
    if access["status"] != expected.status {
        problems.push(format!("status {} (expected {})", access["status"], expected.status));
    }
    if expected.outcome == "aborted-trapped" && !access["abort_latency_us"].is_u64() {
        problems.push("a trapped guest's record has no abort_latency_us".to_owned());
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("{}\n  access record: {access}", problems.join("\n  "))) }
}

#[cfg(test)]
mod tests {
    //! The rules against the reference's measured rows (RESULTS.md, main abort table).
    use super::*;

    fn row(seed: Seed, mode: Mode, transport: Transport, close: Close, iua: bool) -> Row {
        Row { guest: Guest { lang: Lang::Rust, seed }, mode, transport, close, iua, report: false }
    }

    #[test]
    fn seed_a2_dies_at_the_second_write_after_the_close_over_tcp_and_the_first_over_unix() {
        // "A2, nginx default, tcp ob=0: died at write 2"; "unix ob=0: died at write 1".
        let tcp = row(Seed::A2, Mode::Write, Transport::NginxTcp, Close::Fin, false).expected();
        assert_eq!(tcp.outcome, "aborted-trapped");
        assert_eq!(tcp.lines.last().map(String::as_str), Some("iter 2 cs=0"), "{tcp:?}");
        let unix = row(Seed::A2, Mode::Write, Transport::NginxUnix, Close::Fin, false).expected();
        assert_eq!(unix.lines.last().map(String::as_str), Some("iter 1 cs=0"), "{unix:?}");
        // With ignore_user_abort: cs=1 after write 2 (tcp), the script completes.
        let tcp = row(Seed::A2, Mode::Write, Transport::NginxTcp, Close::Fin, true).expected();
        assert_eq!(tcp.outcome, "aborted-ignored");
        assert!(tcp.lines.contains(&"w 3 cs=1 flush=Err(\"aborted\")".to_owned()), "{tcp:?}");
        assert_eq!(tcp.lines.last().map(String::as_str), Some("end cs=1"));
    }

    #[test]
    fn a_reported_write_lets_the_guest_stop_itself_in_write_mode_only() {
        let reported = |lang, mode| {
            let guest = Guest { lang, seed: Seed::A2 };
            Row { guest, mode, transport: Transport::NginxTcp, close: Close::Fin, iua: false, report: true }.expected()
        };
        // Rust's seed runs on past the failing write, reading ABORTED, as one ignoring aborts
        // does; PHP bails out of the script there, where a trap would have stopped it.
        let ignoring = row(Seed::A2, Mode::Write, Transport::NginxTcp, Close::Fin, true).expected();
        let trapped = row(Seed::A2, Mode::Write, Transport::NginxTcp, Close::Fin, false).expected();
        let (rust, php) = (reported(Lang::Rust, Mode::Write), reported(Lang::Php, Mode::Write));
        assert_eq!((rust.outcome, &rust.lines), ("aborted-returned", &ignoring.lines));
        assert_eq!((php.outcome, &php.lines), ("aborted-returned", &trapped.lines));
        // Prompt mode traps all the same.
        let prompt = row(Seed::A2, Mode::Prompt, Transport::NginxTcp, Close::Fin, false).expected();
        assert_eq!((reported(Lang::Rust, Mode::Prompt), reported(Lang::Php, Mode::Prompt)), (prompt.clone(), prompt));
    }

    #[test]
    fn seed_b_logs_two_iterations_over_tcp_and_one_over_unix_then_dies() {
        // "B, nginx default, tcp, abort 1 s, iua=0: 2 log lines, then it died"; unix: 1.
        let iterations = |transport| {
            let expected = row(Seed::B, Mode::Write, transport, Close::Fin, false).expected();
            expected.lines.iter().filter(|l| l.starts_with("iter ")).count()
        };
        assert_eq!((iterations(Transport::NginxTcp), iterations(Transport::NginxUnix)), (2, 1));
        // iua=1: ABORTED first in iteration 3 (tcp), 2 (unix); completed.
        let first_stop = |transport| {
            let expected = row(Seed::B, Mode::Write, transport, Close::Fin, true).expected();
            assert_eq!(expected.outcome, "aborted-ignored");
            expected.lines.iter().find(|l| l.starts_with("stop ")).cloned()
        };
        assert_eq!(first_stop(Transport::NginxTcp).as_deref(), Some("stop 2"));
        assert_eq!(first_stop(Transport::NginxUnix).as_deref(), Some("stop 1"));
    }

    #[test]
    fn a_guest_without_output_runs_to_completion_in_write_mode() {
        // "A1 (no output), every setup, iua 0/1: completed", never noticing the close. Where
        // the first write after the close fails, the host's write of the response does, and
        // nothing reaches the client (499).
        for transport in Transport::ALL {
            for close in Close::ALL {
                let expected = row(Seed::A, Mode::Write, transport, close, false).expected();
                assert_eq!(expected.lines, ["start cs=0", "end cs=0"]);
                assert_eq!(expected.outcome, "completed", "{transport:?} {close:?}");
                let response_write_fails = notice(Mode::Write, transport, close) == Notice::AtWrite(1);
                assert_eq!(expected.status, if response_write_fails { 499 } else { 200 }, "{transport:?} {close:?}");
            }
        }
    }

    #[test]
    fn prompt_mode_traps_without_a_write_or_runs_on_reading_aborted() {
        let trapped = row(Seed::B, Mode::Prompt, Transport::Http, Close::Rst, false).expected();
        assert_eq!((trapped.outcome, trapped.lines.as_slice()), ("aborted-trapped", &["start cs=0".to_owned()][..]));
        let ignored = row(Seed::A, Mode::Prompt, Transport::NginxUnix, Close::Half, true).expected();
        assert_eq!((ignored.outcome, ignored.lines.as_slice()), ("aborted-ignored", &["start cs=0".to_owned(), "end cs=1".to_owned()][..]));
    }

    #[test]
    fn leaving_after_finish_request_is_no_abort() {
        for row in table().into_iter().filter(|row| row.guest.seed == Seed::Finish) {
            let expected = row.expected();
            assert_eq!(expected.outcome, "finished-early", "{}", row.name());
            assert_eq!(expected.lines, ["finished true cs=0", "after_sleep cs=0", "end cs=0"], "{}", row.name());
        }
    }

    #[test]
    fn every_row_has_its_own_route_and_name() {
        let rows = table();
        let routes: std::collections::HashSet<_> = rows.iter().map(|row| (row.transport.name(), row.route())).collect();
        let names: std::collections::HashSet<_> = rows.iter().map(Row::name).collect();
        assert_eq!((routes.len(), names.len()), (rows.len(), rows.len()));
    }
}
