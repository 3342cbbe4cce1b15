//! The no-Wasm limit: a minimal tokio HTTP/1.1 server that answers every request with the same
//! bytes as Tether's hello route. Usage: `baseline ADDR`.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Tether's hello response, byte for byte apart from the date.
fn response() -> Vec<u8> {
    let date = std::process::Command::new("date").args(["-u", "+%a, %d %b %Y %H:%M:%S GMT"]).output().map(|o| o.stdout).unwrap_or_default();
    let date = String::from_utf8_lossy(&date).trim().to_owned();
    format!("HTTP/1.1 200 OK\r\ndate: {date}\r\ncontent-type: text/plain\r\ncontent-length: 6\r\n\r\nhello\n").into_bytes()
}

fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:19090".into());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("listening {addr}");
        let response: &'static [u8] = Box::leak(response().into_boxed_slice());
        loop {
            let (mut stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                let mut out = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let n = match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        out.extend_from_slice(response);
                    }
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                    out.clear();
                }
            });
        }
    })
}
