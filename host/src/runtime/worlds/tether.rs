//! The Tether world (`wit/tether.wit`, world `handler`): its one `bindgen!`, the host side of
//! each of its interfaces, its linker, and how a request runs in it: instantiate, then call
//! `handle` once.
//!
//! Every import is async (host calls may wait on the socket, the body or a timer) and trappable
//! (a host call is where a killed guest is stopped). What the guest caused comes back to it as
//! a WIT `result` (a refused header, output after `finish-request`); a killed request comes back
//! as a trap.

use super::super::store::{HostState, trap};
use super::Failed;
use crate::request::{BodyError, HeadError, MustTrap, OutputError};
use std::time::{Duration, Instant};
use tether::guest::{conn, lifecycle, output, request, response};
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "handler",
    imports: { default: async | trappable },
    exports: { default: async },
});

/// The most body bytes handed over per `read-body`, whatever the guest asks for.
const MAX_BODY_READ: u32 = 1 << 20;

/// Links the Tether interfaces into `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    Handler::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
}

/// Links the Tether interfaces that make sense next to another world's: `conn` (the connection
/// status, ignore-user-abort) and `lifecycle` (finish-request, set-time-limit).
pub fn add_request_state_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    conn::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    lifecycle::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
}

/// Runs one request in a fresh instance of `pre`: instantiates it in `store` and calls
/// `handle`.
pub async fn run(pre: &HandlerPre<HostState>, store: &mut Store<HostState>) -> Result<(), Failed> {
    let handler = pre.instantiate_async(&mut *store).await.map_err(Failed::Instantiating)?;
    handler.call_handle(&mut *store).await.map_err(Failed::Running)
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
            Err(BodyError::Aborted) if self.state.output_must_trap() => Err(trap(MustTrap)),
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
        Ok(self.state.status())
    }

    async fn aborted(&mut self) -> wasmtime::Result<bool> {
        Ok(self.state.is_aborted())
    }

    async fn ignore_user_abort(&mut self, setting: Option<bool>) -> wasmtime::Result<bool> {
        let previous = match setting {
            Some(value) => self.state.set_ignore_user_abort(value),
            None => self.state.ignores_user_abort(),
        };
        // Turning it off after an abort was seen kills the request in prompt mode.
        self.alive()?;
        Ok(previous)
    }

    async fn report_aborted_writes(&mut self) -> wasmtime::Result<()> {
        self.state.report_aborted_writes();
        Ok(())
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
