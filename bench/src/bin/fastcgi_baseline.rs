//! The no-Wasm limit behind nginx: a minimal tokio FastCGI responder on a Unix socket that
//! answers every request with the same bytes as Tether's hello route, doing nothing else.
//! Behind the same nginx as Tether and php-fpm it shows how many requests per second nginx,
//! `wrk` and the socket work leave room for on this machine, whatever the application costs.
//! Usage: `fastcgi_baseline SOCKET_PATH`. It decodes records with Tether's own codec
//! (`host::fastcgi::record`), which is pure and cheap.

use bytes::BytesMut;
use host::fastcgi::record::{self, BeginRequest, Frames, ProtocolStatus, kind};
use host::manifest::DEFAULT_SEND_TIMEOUT;
use host::net::write_all_vectored;
use tokio::io::AsyncReadExt as _;
use tokio::net::{UnixListener, UnixStream};

/// Tether's hello response as CGI output (the guest's header, the length Tether adds to a
/// response whose guest never flushed, the body; a 200 has no `Status` line).
const RESPONSE: &[u8] = b"content-type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n";

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: fastcgi_baseline SOCKET_PATH"))?;
    let _ = std::fs::remove_file(&path);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = UnixListener::bind(&path)?;
        println!("listening unix:{path}");
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                if let Err(error) = serve(stream).await {
                    eprintln!("fastcgi_baseline: {error}");
                }
            });
        }
    })
}

/// Answers the requests on one connection, one at a time, until the peer closes it or a
/// request without `FCGI_KEEP_CONN` has been answered. Each answer is one vectored write, as
/// Tether's.
async fn serve(mut stream: UnixStream) -> anyhow::Result<()> {
    let mut buf = BytesMut::with_capacity(4096);
    let mut keep_conn = false;
    loop {
        while let Some(rec) = record::decode(&mut buf)? {
            match rec.kind {
                kind::BEGIN_REQUEST => keep_conn = BeginRequest::parse(&rec.content)?.keep_conn(),
                kind::STDIN if rec.content.is_empty() => {
                    let id = rec.request_id;
                    let mut frames = Frames::new();
                    frames.stream(kind::STDOUT, id, RESPONSE).end_stream(kind::STDOUT, id).end_request(id, ProtocolStatus::RequestComplete);
                    write_all_vectored(&mut stream, &mut frames.slices(), DEFAULT_SEND_TIMEOUT, &mut 0).await?;
                    if !keep_conn {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}
