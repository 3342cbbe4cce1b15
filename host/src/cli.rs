//! The command line: `tether serve`, `tether check`, `tether build` and `tether probe`, with
//! environment variable fallbacks, logging set-up and exit codes. It parses arguments and calls
//! the server ([`crate::server`]), the builder or the probe; everything else is theirs.

use crate::generation::CacheChoice;
use crate::manifest::{ListenAddr, Manifest, ManifestError};
use crate::{build, examples, probe, scaffold, server};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code for a bad manifest or component (sysexits' `EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;
/// Exit code for any other failure.
pub const EXIT_FAILURE: u8 = 1;

/// Tether: run each HTTP or FastCGI request in a fresh WebAssembly component instance, and stop
/// it the moment its client goes away.
#[derive(Debug, Parser)]
#[command(name = "tether", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format: human-readable text, or one JSON object per line.
    #[arg(long, global = true, env = "TETHER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Log output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, fields at the top level.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the routes of a manifest (without one, the built-in example manifest).
    Serve(ServeArgs),
    /// Validate a manifest and compile its components, without serving.
    Check(CheckArgs),
    /// Run the build commands of a manifest's routes (`[route.build]`).
    Build(BuildArgs),
    /// Send one request and disconnect on a script, printing a timeline of what happened.
    Probe(probe::ProbeArgs),
    /// Create a handler project in a guest language: source, SDK, WIT and a manifest.
    New(NewArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The manifest (TOML). Without it, the built-in example manifest is served.
    #[arg(env = "TETHER_MANIFEST")]
    manifest: Option<PathBuf>,
    /// HTTP listen address(es), replacing the manifest's: `HOST:PORT` or `unix:/path`.
    #[arg(long, env = "TETHER_LISTEN", value_delimiter = ',')]
    listen: Vec<ListenAddr>,
    /// FastCGI listen address(es), replacing the manifest's: `HOST:PORT` or `unix:/path`.
    #[arg(long, env = "TETHER_FASTCGI", value_delimiter = ',')]
    fastcgi: Vec<ListenAddr>,
    /// The admin listener (`/ping`, `/status`, `/metrics`), replacing the manifest's:
    /// `HOST:PORT` or `unix:/path`.
    #[arg(long, env = "TETHER_ADMIN")]
    admin: Option<ListenAddr>,
    /// Reloads when the manifest or a component file it names changes (for development).
    #[arg(long, env = "TETHER_WATCH")]
    watch: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The manifest to check. Without it, the built-in example manifest is checked (and its
    /// components compiled into the cache, as `tether serve` would).
    #[arg(env = "TETHER_MANIFEST")]
    manifest: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(Debug, clap::Args)]
struct NewArgs {
    /// The language of the handler.
    #[arg(long, value_enum)]
    lang: scaffold::Lang,
    /// The directory to create (it may exist if empty); its name names the project.
    dir: PathBuf,
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// The manifest whose routes to build.
    #[arg(default_value = "tether.toml", env = "TETHER_MANIFEST")]
    manifest: PathBuf,
}

#[derive(Debug, clap::Args)]
struct CacheArgs {
    /// Directory of compiled components (default: the manifest's `cache_dir`, else
    /// `$XDG_CACHE_HOME/tether` or `~/.cache/tether`).
    #[arg(long, env = "TETHER_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every component at start-up; neither read nor write the cache.
    #[arg(long, env = "TETHER_NO_CACHE")]
    no_cache: bool,
}

impl CacheArgs {
    fn choice(&self) -> CacheChoice {
        match (&self.cache_dir, self.no_cache) {
            (_, true) => CacheChoice::Off,
            (Some(dir), false) => CacheChoice::Dir(dir.clone()),
            (None, false) => CacheChoice::Default,
        }
    }
}

/// Creates a project and says how to build and serve it.
fn new_project(args: NewArgs) -> anyhow::Result<()> {
    let files = scaffold::create(args.lang, &args.dir)?;
    for file in files {
        println!("created {}", file.display());
    }
    println!("then: cd {} && tether build && tether serve tether.toml", args.dir.display());
    Ok(())
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Flushes the log writer's queue when main returns.
    let _log = init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check(args) => check(args),
        Command::Build(args) => {
            Manifest::load_for_build(&args.manifest, examples::builtin).map_err(Into::into).and_then(|m| build::run(&m))
        }
        Command::Probe(args) => probe::run(args),
        Command::New(args) => new_project(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let config = error.downcast_ref::<ManifestError>().is_some();
            eprintln!("error: {error:#}");
            ExitCode::from(if config { EXIT_CONFIG } else { EXIT_FAILURE })
        }
    }
}

/// Log lines queued for the writer thread; a request thread only blocks on logging when this
/// many lines wait (stdout's pipe being full, say), instead of at every write.
const LOG_QUEUE_LINES: usize = 128 * 1024;

/// Logs to stdout through a writer thread, so that request threads never wait on the log's
/// pipe. Nothing is dropped: a full queue blocks. The guard flushes the queue when dropped.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("tether-log")
        .finish(std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(colour_log());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).with_span_list(false).init(),
    }
    guard
}

/// Whether the text log is coloured: only on a terminal, and not when `NO_COLOR` is set
/// (<https://no-color.org>). A log going to a file or a pipe gets no escape codes.
fn colour_log() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

fn load_manifest(path: Option<&PathBuf>) -> Result<Manifest, ManifestError> {
    match path {
        Some(path) => Manifest::load(path, examples::builtin),
        None => examples::example_manifest(),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let cache = args.cache.choice();
    let watch = args.watch;
    // Read at start-up and again at each reload, with the command line's addresses in place
    // of the manifest's each time.
    let read = move || {
        let mut manifest = load_manifest(args.manifest.as_ref())?;
        if !args.listen.is_empty() {
            manifest.server.listen.clone_from(&args.listen);
        }
        if !args.fastcgi.is_empty() {
            manifest.server.fastcgi.clone_from(&args.fastcgi);
        }
        if args.admin.is_some() {
            manifest.server.admin.clone_from(&args.admin);
        }
        Ok(manifest)
    };
    server::serve(Arc::new(read), &cache, watch)
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let manifest = load_manifest(args.manifest.as_ref())?;
    let routes = server::check(&manifest, &args.cache.choice())?;
    let name = args.manifest.map_or_else(|| "the built-in example manifest".to_owned(), |path| path.display().to_string());
    println!("{name}: ok, {routes} route(s)");
    Ok(())
}
