//! A real nginx for the FastCGI tests, started on 127.0.0.1 with a generated configuration,
//! in the foreground, and stopped when dropped.

use crate::{TIMEOUT, fresh_dir};
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

/// The CGI parameters nginx sends (what Debian's `fastcgi_params` has, spelled out so the
/// tests do not depend on that file).
pub const FASTCGI_PARAMS: &str = "
    fastcgi_param QUERY_STRING $query_string;
    fastcgi_param REQUEST_METHOD $request_method;
    fastcgi_param CONTENT_TYPE $content_type;
    fastcgi_param CONTENT_LENGTH $content_length;
    fastcgi_param SCRIPT_NAME $fastcgi_script_name;
    fastcgi_param REQUEST_URI $request_uri;
    fastcgi_param DOCUMENT_URI $document_uri;
    fastcgi_param SERVER_PROTOCOL $server_protocol;
    fastcgi_param GATEWAY_INTERFACE CGI/1.1;
    fastcgi_param REMOTE_ADDR $remote_addr;
    fastcgi_param REMOTE_PORT $remote_port;
    fastcgi_param SERVER_ADDR $server_addr;
    fastcgi_param SERVER_PORT $server_port;
    fastcgi_param SERVER_NAME $server_name;
    fastcgi_param REQUEST_SCHEME $scheme;
    fastcgi_param HTTPS $https if_not_empty;
";

/// An nginx `server` body passing everything to the FastCGI `upstream` (`HOST:PORT` or
/// `unix:/path`) with the reference's two abort-related settings: `fastcgi_ignore_client_abort`
/// and `fastcgi_buffering` (`pass(upstream, false, true)` is nginx's default).
pub fn pass(upstream: &str, ignore_client_abort: bool, buffering: bool) -> String {
    let on = |b: bool| if b { "on" } else { "off" };
    format!(
        "        location / {{\n{FASTCGI_PARAMS}\n            fastcgi_param APP_ENV tested;\n            fastcgi_ignore_client_abort {};\n            fastcgi_buffering {};\n            fastcgi_pass {upstream};\n        }}",
        on(ignore_client_abort),
        on(buffering)
    )
}

/// The nginx binary.
fn nginx_bin() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx is not installed: run `scripts/setup --test` (`make test` does)")
}

/// Attempts at starting nginx when a port it was given was taken meanwhile.
const START_ATTEMPTS: usize = 3;

/// A free port on 127.0.0.1 (released again: nginx binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A running nginx.
pub struct Nginx {
    /// The master process.
    child: Child,
    /// The port of each server block, in the order given.
    pub ports: Vec<u16>,
}

impl Nginx {
    /// Starts nginx with `http` directives at the `http` level and one `server` block per entry
    /// of `servers` (its body; the harness adds `listen 127.0.0.1:PORT`). Returns once nginx
    /// logged that its worker started, so its sockets are bound.
    pub fn start(http: &str, servers: &[String]) -> Nginx {
        // The ports are free when picked, but another process may take one before nginx binds
        // it: then try again with new ones.
        for _ in 1..START_ATTEMPTS {
            match Self::try_start(http, servers) {
                Ok(nginx) => return nginx,
                Err(line) if line.contains("Address already in use") => continue,
                Err(line) => panic!("nginx failed to start: {line}"),
            }
        }
        Self::try_start(http, servers).unwrap_or_else(|line| panic!("nginx failed to start: {line}"))
    }

    /// One attempt of [`Nginx::start`]; `Err` carries nginx's `[emerg]` line.
    fn try_start(http: &str, servers: &[String]) -> Result<Nginx, String> {
        let dir = fresh_dir("nginx");
        let ports: Vec<u16> = servers.iter().map(|_| free_port()).collect();
        let blocks: String = servers
            .iter()
            .zip(&ports)
            .map(|(body, port)| format!("    server {{\n        listen 127.0.0.1:{port};\n{body}\n    }}\n"))
            .collect();
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\ndaemon off;\nerror_log stderr info;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    fastcgi_temp_path {d}/fastcgi;\n\
             proxy_temp_path {d}/proxy;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n{http}\n{blocks}}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).expect("writing nginx.conf");
        let mut child = Command::new(nginx_bin())
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting nginx");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("nginx did not start; it said: {seen:#?}"));
            if line.contains("start worker process ") {
                break;
            }
            if line.contains("[emerg]") {
                let _ = child.wait();
                return Err(line);
            }
            seen.push(line);
        }
        // Keep draining nginx's log so that it never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Ok(Nginx { child, ports })
    }

    /// `127.0.0.1:PORT` of server block `i`.
    pub fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }
}

impl Drop for Nginx {
    /// Stops nginx with SIGTERM, its fast shutdown: the master stops its workers (escalating to
    /// SIGKILL itself after a second) and then exits. Killing the master outright would leave the
    /// workers running, orphaned, holding their ports.
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        if rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_err() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
