//! `tether probe`: a client for abort experiments. It sends one HTTP request, disconnects on a
//! script (FIN, RST, half-close, or not at all) and prints a timeline of what happened on the
//! wire. With `--serve`, it first starts a private server on an ephemeral port and afterwards
//! prints what the guest saw: its log lines and the request's access record (outcome, abort
//! latency).

use crate::units::parse_duration;
use anyhow::{Context as _, bail};
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long `--serve` waits for the private server's log lines after the request.
const SERVER_LOG_WAIT: Duration = Duration::from_secs(15);
/// Upper bound for a probe whose server never closes (`--how drain` or `half-close` against a
/// guest that never ends): it gives up then.
const MAX_PROBE: Duration = Duration::from_secs(600);

/// How the probe disconnects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum How {
    /// Discard unread bytes, then close: the kernel sends FIN.
    Fin,
    /// Close with `SO_LINGER {1, 0}`: the kernel sends RST.
    Rst,
    /// Close without reading: FIN, or RST if response bytes are unread.
    Close,
    /// `shutdown(SHUT_WR)`, then keep reading until the server closes.
    HalfClose,
    /// Do not disconnect early: read the whole response (with `--close-after`, at most that
    /// long).
    Drain,
}

/// Arguments of `tether probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The URL, `http://HOST:PORT/PATH?QUERY`. With `--serve`, only its path and query matter.
    url: String,
    /// The request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// A request body (sent with Content-Length).
    #[arg(long)]
    body: Option<String>,
    /// Extra request headers, `Name: value`.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// When to disconnect, after the request was sent (for example `500ms`, `1s`).
    #[arg(long, value_parser = parse_duration)]
    close_after: Option<Duration>,
    /// How to disconnect.
    #[arg(long, value_enum, default_value_t = How::Fin)]
    how: How,
    /// Start a private server with this manifest (`builtin` for the example manifest) and
    /// show the guest's log lines and access record afterwards.
    #[arg(long)]
    serve: Option<String>,
}

/// Runs the probe.
pub fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let (host, port, path) = split_url(&args.url)?;
    if args.how != How::Drain && args.close_after.is_none() {
        bail!("--how {:?} needs --close-after", args.how);
    }
    let mut server = match &args.serve {
        Some(manifest) => Some(PrivateServer::start(manifest)?),
        None => None,
    };
    let addr = match &server {
        Some(server) => server.addr.clone(),
        None => format!("{host}:{port}"),
    };
    let request = build_request(&args, &host, &path);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(exchange(&addr, &request, args.close_after, args.how))?;
    if let Some(server) = server.as_mut() {
        server.report()?;
    }
    Ok(())
}

fn split_url(url: &str) -> anyhow::Result<(String, u16, String)> {
    let rest = url.strip_prefix("http://").context("the URL must start with http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().with_context(|| format!("bad port in {url}"))?),
        None => (authority, 80),
    };
    Ok((host.to_owned(), port, path.to_owned()))
}

fn build_request(args: &ProbeArgs, host: &str, path: &str) -> Vec<u8> {
    let mut request = format!("{} {} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n", args.method, path);
    for header in &args.headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    if let Some(body) = &args.body {
        request.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    if let Some(body) = &args.body {
        request.push_str(body);
    }
    request.into_bytes()
}

fn stamp(start: Instant) -> String {
    format!("{:>10.3} ms", start.elapsed().as_secs_f64() * 1e3)
}

async fn exchange(addr: &str, request: &[u8], close_after: Option<Duration>, how: How) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    println!("{}  connected to {addr}", stamp(start));
    stream.write_all(request).await?;
    println!("{}  sent {} bytes", stamp(start), request.len());
    let sent = tokio::time::Instant::now();
    let close_at = close_after.map(|after| sent + after);
    let give_up = sent + MAX_PROBE;
    let mut total = 0usize;
    let mut first = true;
    let mut buf = vec![0u8; 64 * 1024];
    let mut half_closed = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(give_up) => {
                println!("{}  giving up after {MAX_PROBE:?}: the server never closed ({total} bytes received)", stamp(start));
                return Ok(());
            }
            () = tokio::time::sleep_until(close_at.unwrap_or(give_up)), if close_at.is_some() && !half_closed => {
                println!("{}  disconnecting: {how:?}", stamp(start));
                match how {
                    How::Fin => {
                        while let Ok(n) = stream.try_read(&mut buf) {
                            if n == 0 { break }
                            total += n;
                        }
                    }
                    How::Rst => socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?,
                    How::HalfClose => {
                        stream.shutdown().await?;
                        half_closed = true;
                        println!("{}  write side shut down; still reading", stamp(start));
                        continue;
                    }
                    How::Close | How::Drain => {}
                }
                drop(stream);
                println!("{}  closed ({total} bytes received)", stamp(start));
                return Ok(());
            }
            read = stream.read(&mut buf) => match read {
                Ok(0) => {
                    println!("{}  server closed the connection ({total} bytes received)", stamp(start));
                    return Ok(());
                }
                Ok(n) => {
                    total += n;
                    let preview = if first {
                        first = false;
                        let text = String::from_utf8_lossy(&buf[..n]);
                        format!("  {}", text.lines().next().unwrap_or(""))
                    } else {
                        String::new()
                    };
                    println!("{}  received {n} bytes (total {total}){preview}", stamp(start));
                }
                Err(error) => {
                    println!("{}  read failed: {error}", stamp(start));
                    return Ok(());
                }
            },
        }
    }
}

/// A `tether serve` child on an ephemeral port, with JSON logs.
struct PrivateServer {
    /// The child process.
    child: Child,
    /// Its bound address.
    addr: String,
    /// Its stdout, line by line.
    lines: std::sync::mpsc::Receiver<String>,
}

impl PrivateServer {
    fn start(manifest: &str) -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe().context("finding the tether binary")?);
        command.args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"]);
        if manifest != "builtin" {
            command.arg(PathBuf::from(manifest));
        }
        let mut child = command.stdout(Stdio::piped()).spawn().context("starting the private server")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + SERVER_LOG_WAIT;
        loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .context("the private server did not start (see its error above)")?;
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if event["message"] == "listening" && event["protocol"] == "http" {
                let addr = event["addr"].as_str().context("no address in the listening line")?.to_owned();
                println!("private server on {addr}");
                return Ok(Self { child, addr, lines });
            }
        }
    }

    /// Prints the guest's lines and the access record, once the access record arrives.
    fn report(&mut self) -> anyhow::Result<()> {
        println!("--- what the server saw ---");
        let deadline = Instant::now() + SERVER_LOG_WAIT;
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            match event["target"].as_str() {
                Some("tether::guest") => {
                    println!("guest {}: {}", event["stream"].as_str().unwrap_or(""), event["message"].as_str().unwrap_or(""))
                }
                Some("tether::access") => {
                    println!(
                        "request: status {} outcome {} bytes {} duration {} µs abort latency {}",
                        event["status"],
                        event["outcome"].as_str().unwrap_or("?"),
                        event["bytes"],
                        event["duration_us"],
                        event["abort_latency_us"].as_u64().map_or("-".to_owned(), |us| format!("{us} µs")),
                    );
                    return Ok(());
                }
                _ => {}
            }
        }
        bail!("the server did not log the request within {SERVER_LOG_WAIT:?}")
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        assert_eq!(split_url("http://127.0.0.1:8080/seed-a?iua=1").unwrap(), ("127.0.0.1".into(), 8080, "/seed-a?iua=1".into()));
        assert_eq!(split_url("http://localhost").unwrap(), ("localhost".into(), 80, "/".into()));
        assert!(split_url("https://x/").is_err());
    }
}
