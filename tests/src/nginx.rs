//! A real nginx for the FastCGI tests, started on 127.0.0.1 with a generated configuration,
//! in the foreground, and stopped when dropped.

use crate::foreground::{Foreground, Launch};
use std::path::PathBuf;
use std::process::Command;

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

/// How nginx runs: in the foreground (`daemon off`), logging to stderr. Its master stops on
/// SIGTERM, its fast shutdown: it stops its workers (escalating to SIGKILL itself after a
/// second) and then exits. Killing the master outright would leave the workers running,
/// orphaned, holding their ports.
const LAUNCH: Launch =
    Launch { name: "nginx", ready: "start worker process ", failed: Some("[emerg]"), stop: rustix::process::Signal::TERM };

/// A running nginx.
pub struct Nginx {
    /// The master process, with the port of each server block in the order given.
    server: Foreground,
}

impl Nginx {
    /// Starts nginx with `http` directives at the `http` level and one `server` block per entry
    /// of `servers` (its body; the harness adds `listen 127.0.0.1:PORT`). Returns once nginx
    /// logged that its worker started, so its sockets are bound.
    pub fn start(http: &str, servers: &[String]) -> Nginx {
        let server = Foreground::start(&LAUNCH, servers.len(), |dir, ports| {
            let blocks: String = servers
                .iter()
                .zip(ports)
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
            let mut command = Command::new(nginx_bin());
            command.arg("-c").arg(&path).arg("-p").arg(dir);
            command
        });
        Nginx { server }
    }

    /// `127.0.0.1:PORT` of server block `i`.
    pub fn addr(&self, i: usize) -> String {
        self.server.addr(i)
    }

    /// Kills the master and its worker with SIGKILL (see [`Foreground::kill`]).
    pub fn kill(&mut self) {
        self.server.kill();
    }
}
