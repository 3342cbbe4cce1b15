//! The store's state and the host side of each Tether interface.
//!
//! What the guest caused comes back to it as a WIT `result` (a refused header, output after
//! `finish-request`); a killed request comes back as a trap, which is how the host stops a guest
//! that is inside a host call.

use super::bindings::tether::guest::{conn, lifecycle, output, request, response};
use super::limits::{CpuBudget, MemoryLimiter};
use super::stdio::{GuestLog, Stream};
use super::{GuestSettings, Invocation};
use crate::request::{BodyError, BodyReceiver, ConnState, HeadError, MustTrap, Output, OutputError, RequestHead, StderrSink};
use anyhow::Context as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The most body bytes handed over per `read-body`, whatever the guest asks for.
const MAX_BODY_READ: u32 = 1 << 20;

/// Everything one request's store holds.
pub struct HostState {
    /// WASI, with only what the route grants.
    wasi: Wasi,
    /// WASI's resources.
    table: ResourceTable,
    /// Caps linear memory.
    pub limiter: MemoryLimiter,
    /// `max_execution_time` accounting.
    pub budget: CpuBudget,
    /// The request line and headers.
    head: RequestHead,
    /// The request body.
    body: BodyReceiver,
    /// The response.
    output: Arc<tokio::sync::Mutex<Output>>,
    /// The connection state.
    pub conn: Arc<ConnState>,
}

/// A request's WASI context, built when the guest first calls into WASI. Most requests never do
/// (a guest written with the SDK answers through the Tether interfaces alone), and building one
/// costs about half a microsecond (entry 21 of bench/notes.md). A route that grants directories
/// builds it before the guest runs, because opening them can fail and that must fail the request.
enum Wasi {
    /// Not built yet: what building it needs.
    Deferred {
        /// Request id, for the guest's log lines.
        id: u64,
        /// The route's settings (environment, directories, name).
        settings: Arc<GuestSettings>,
        /// Where the guest's stderr lines go besides the log, if anywhere.
        stderr: Option<StderrSink>,
    },
    /// Built (boxed: a context is large, and most requests never build one).
    Built(Box<WasiCtx>),
}

impl Wasi {
    /// The context for request `id` under `settings`: built now if the route grants directories.
    fn new(id: u64, settings: &Arc<GuestSettings>, stderr: Option<StderrSink>) -> anyhow::Result<Self> {
        if settings.preopens.is_empty() {
            Ok(Self::Deferred { id, settings: settings.clone(), stderr })
        } else {
            Ok(Self::Built(Self::build(id, settings, stderr)?))
        }
    }

    /// Builds the context: stdout and stderr to the log, the route's environment and directories.
    fn build(id: u64, settings: &GuestSettings, stderr: Option<StderrSink>) -> anyhow::Result<Box<WasiCtx>> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(GuestLog::new(id, settings.route.clone(), Stream::Stdout, None));
        wasi.stderr(GuestLog::new(id, settings.route.clone(), Stream::Stderr, stderr));
        wasi.envs(&settings.env);
        for preopen in &settings.preopens {
            let perms = if preopen.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
            wasi.preopened_dir(&preopen.host, &preopen.guest, perms)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("opening the granted directory {}", preopen.host.display()))?;
        }
        Ok(Box::new(wasi.build()))
    }

    /// The context, built if it was deferred.
    fn get(&mut self) -> &mut WasiCtx {
        if let Self::Deferred { id, settings, stderr } = self {
            let built = Self::build(*id, settings, stderr.take()).expect("a route without directories builds its WASI context infallibly");
            *self = Self::Built(built);
        }
        match self {
            Self::Built(ctx) => ctx,
            Self::Deferred { .. } => unreachable!("built above"),
        }
    }
}

impl HostState {
    /// The state for `invocation` under `settings`.
    pub fn new(invocation: Invocation, settings: &Arc<GuestSettings>) -> anyhow::Result<Self> {
        Ok(Self {
            wasi: Wasi::new(invocation.id, settings, invocation.stderr)?,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(settings.max_memory),
            budget: CpuBudget::new(settings.max_execution_time),
            head: invocation.head,
            body: invocation.body,
            output: invocation.output,
            conn: invocation.conn,
        })
    }

    /// Traps if the request was killed while the guest was on its way into a host call.
    fn alive(&self) -> wasmtime::Result<()> {
        match self.conn.kill_reason() {
            Some(_) => Err(wasmtime::Error::new(MustTrap)),
            None => Ok(()),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: self.wasi.get(), table: &mut self.table }
    }
}

fn trap(error: MustTrap) -> wasmtime::Error {
    wasmtime::Error::new(error)
}

impl From<BodyError> for request::BodyError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::Aborted => Self::Aborted,
            BodyError::TooLarge => Self::TooLarge,
            BodyError::Malformed => Self::Malformed,
            BodyError::Unavailable => Self::Unavailable,
        }
    }
}

impl From<HeadError> for response::HeadError {
    fn from(error: HeadError) -> Self {
        match error {
            HeadError::HeadersSent => Self::HeadersSent,
            HeadError::Invalid => Self::Invalid,
            HeadError::Reserved => Self::Reserved,
        }
    }
}

impl From<OutputError> for output::OutputError {
    fn from(error: OutputError) -> Self {
        match error {
            OutputError::Aborted => Self::Aborted,
            OutputError::Finished => Self::Finished,
        }
    }
}

impl request::Host for HostState {
    async fn method(&mut self) -> wasmtime::Result<String> {
        Ok(self.head.method.clone())
    }

    async fn target(&mut self) -> wasmtime::Result<String> {
        Ok(self.head.target.clone())
    }

    async fn protocol(&mut self) -> wasmtime::Result<String> {
        Ok(self.head.protocol.clone())
    }

    async fn remote_addr(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.head.remote_addr.as_deref().map(str::to_owned))
    }

    async fn scheme(&mut self) -> wasmtime::Result<String> {
        Ok(self.head.scheme().to_owned())
    }

    async fn headers(&mut self) -> wasmtime::Result<Vec<(String, Vec<u8>)>> {
        Ok(self.head.headers.clone())
    }

    async fn server_vars(&mut self) -> wasmtime::Result<Vec<(String, Vec<u8>)>> {
        Ok(self.head.server_vars())
    }

    async fn read_body(&mut self, max: u32) -> wasmtime::Result<Result<Vec<u8>, request::BodyError>> {
        self.alive()?;
        if !self.body.is_exhausted() {
            self.output.lock().await.body_wanted().await;
        }
        match self.body.read(max.min(MAX_BODY_READ) as usize).await {
            Ok(bytes) => Ok(Ok(bytes.to_vec())),
            Err(BodyError::Aborted) if self.conn.output_must_trap() => Err(trap(MustTrap)),
            Err(error) => Ok(Err(error.into())),
        }
    }
}

impl response::Host for HostState {
    async fn set_status(&mut self, code: u16) -> wasmtime::Result<Result<(), response::HeadError>> {
        let mut output = self.output.lock().await;
        Ok(output.head_mut().and_then(|head| head.set_status(code)).map_err(Into::into))
    }

    async fn set_header(&mut self, name: String, value: String) -> wasmtime::Result<Result<(), response::HeadError>> {
        let mut output = self.output.lock().await;
        Ok(output.head_mut().and_then(|head| head.set_header(&name, &value)).map_err(Into::into))
    }

    async fn append_header(&mut self, name: String, value: String) -> wasmtime::Result<Result<(), response::HeadError>> {
        let mut output = self.output.lock().await;
        Ok(output.head_mut().and_then(|head| head.append_header(&name, &value)).map_err(Into::into))
    }

    async fn headers_sent(&mut self) -> wasmtime::Result<bool> {
        Ok(self.output.lock().await.headers_sent())
    }

    async fn status(&mut self) -> wasmtime::Result<u16> {
        Ok(self.output.lock().await.head().status)
    }

    async fn headers(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.output.lock().await.head().headers.clone())
    }

    async fn remove_header(&mut self, name: String) -> wasmtime::Result<Result<(), response::HeadError>> {
        let mut output = self.output.lock().await;
        Ok(output.head_mut().and_then(|head| head.remove_header(&name)).map_err(Into::into))
    }
}

impl output::Host for HostState {
    async fn write(&mut self, bytes: Vec<u8>) -> wasmtime::Result<Result<(), output::OutputError>> {
        self.alive()?;
        let result = self.output.lock().await.write(&bytes).await.map_err(trap)?;
        Ok(result.map_err(Into::into))
    }

    async fn flush(&mut self) -> wasmtime::Result<Result<(), output::OutputError>> {
        self.alive()?;
        let result = self.output.lock().await.flush().await.map_err(trap)?;
        Ok(result.map_err(Into::into))
    }
}

impl conn::Host for HostState {
    async fn status(&mut self) -> wasmtime::Result<u8> {
        Ok(self.conn.status())
    }

    async fn aborted(&mut self) -> wasmtime::Result<bool> {
        Ok(self.conn.is_aborted())
    }

    async fn ignore_user_abort(&mut self, setting: Option<bool>) -> wasmtime::Result<bool> {
        let previous = match setting {
            Some(value) => self.conn.set_ignore_user_abort(value),
            None => self.conn.ignores_user_abort(),
        };
        // Turning it off after an abort was seen kills the request in prompt mode.
        self.alive()?;
        Ok(previous)
    }
}

impl lifecycle::Host for HostState {
    async fn finish_request(&mut self) -> wasmtime::Result<bool> {
        self.alive()?;
        self.output.lock().await.finish_request().await.map_err(trap)
    }

    async fn set_time_limit(&mut self, seconds: u32) -> wasmtime::Result<()> {
        let limit = (seconds > 0).then(|| Duration::from_secs(u64::from(seconds)));
        self.budget.restart(limit, Instant::now());
        Ok(())
    }
}
