//! Per-request cost of the sandbox alone, in two parts timed separately, as the server runs them:
//! `instantiate-call` is a fresh `Store`, instantiation from the route's `InstancePre`, the
//! `handle` call of the hello guest (with its host calls) and the end of the response into a sink
//! that discards it (the client has its answer then); `teardown` is dropping the store, which
//! resets the instance's pool slot and which the server does after the response is out. `total`
//! is both. No sockets. Pooling allocator on and off.

use bench::{micros, quick, report, summarize};
use host::request::{AbortDetection, BodyReceiver, Output, RequestHead, RequestState, ResponseHead, ResponseSink};
use host::runtime::{EngineLimits, GuestSettings, Invocation, Runtime};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A response sink that accepts everything and writes nowhere.
struct NullSink;

#[async_trait::async_trait]
impl ResponseSink for NullSink {
    async fn send(&mut self, _: Option<&ResponseHead>, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    async fn complete(&mut self, _: Option<&ResponseHead>, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    async fn fail(&mut self, _: host::request::Failure) {}
    async fn body_wanted(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn bytes_sent(&self) -> u64 {
        0
    }
}

fn main() -> anyhow::Result<()> {
    let (warmup, iterations) = if quick() { (200, 2_000) } else { (2_000, 20_000) };
    // COMPONENT=path measures another component's hello (the language guests answer by the last
    // path segment); KEEP_RESIDENT=bytes sets the pool's `keep_resident`.
    let wasm = match std::env::var_os("COMPONENT") {
        Some(path) => std::fs::read(path)?,
        None => host::examples::builtin("hello").expect("the hello guest is built in").1.to_vec(),
    };
    let keep_resident = match std::env::var("KEEP_RESIDENT") {
        Ok(bytes) => bytes.parse()?,
        Err(_) => host::manifest::DEFAULT_KEEP_RESIDENT,
    };
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // POOLING=on or off measures one configuration only (for profiling).
    let configurations: &[bool] = match std::env::var("POOLING").as_deref() {
        Ok("on") => &[true],
        Ok("off") => &[false],
        _ => &[true, false],
    };
    for &pooling in configurations {
        let limits = EngineLimits { max_instances: 64, max_memory: 128 << 20, pooling, keep_resident };
        // CACHE_DIR=dir loads the component from that compile cache (no compile in a profile).
        let cache = std::env::var_os("CACHE_DIR").map(host::runtime::CompileCache::new);
        let runtime = Runtime::new(&limits, cache)?;
        anyhow::ensure!(runtime.pooling() == pooling, "pooling={pooling} is unavailable on this machine");
        let settings = GuestSettings {
            route: "/hello".into(),
            max_memory: 128 << 20,
            max_execution_time: Some(Duration::from_secs(30)),
            ..GuestSettings::default()
        };
        let guest = runtime.load(&wasm, settings)?;
        // Per part: instantiate + call, teardown, and both.
        let mut samples = [(); 3].map(|()| Vec::with_capacity(iterations));
        tokio.block_on(async {
            for i in 0..warmup + iterations {
                let state = Arc::new(RequestState::new(AbortDetection::Prompt, true, guest.interrupt_hook()));
                let output = Arc::new(tokio::sync::Mutex::new(Output::new(Box::new(NullSink), state.clone(), 4096)));
                let head = RequestHead {
                    method: "GET".into(),
                    target: "/hello".into(),
                    protocol: "HTTP/1.1".into(),
                    remote_addr: None,
                    local_addr: None,
                    cgi_vars: None,
                    https: false,
                    headers: vec![("host".into(), b"bench".to_vec())],
                };
                let invocation = Invocation {
                    id: i as u64,
                    arrived: Instant::now(),
                    head,
                    body: BodyReceiver::empty(),
                    output: output.clone(),
                    state,
                    stderr: None,
                };
                let start = Instant::now();
                let (result, spent) = guest.handle(invocation).await;
                result.expect("the hello guest runs");
                output.lock().await.end().await;
                let answered = Instant::now();
                drop(spent);
                let torn_down = Instant::now();
                if i >= warmup {
                    for (part, span) in samples.iter_mut().zip([answered - start, torn_down - answered, torn_down - start]) {
                        part.push(micros(span));
                    }
                }
            }
        });
        for (part, mut samples) in ["instantiate-call", "teardown", "total"].into_iter().zip(samples) {
            report("instantiate", serde_json::json!({ "pooling": pooling, "part": part }), summarize(&mut samples));
        }
    }
    Ok(())
}
