//! A real Caddy (Debian's `caddy`) for the front-server tests, started on 127.0.0.1 with a
//! generated Caddyfile (`caddy run --adapter caddyfile`): no admin endpoint, no automatic
//! HTTPS, and its storage, configuration and home in a directory of its own.

use crate::foreground::{Foreground, Launch};
use std::process::Command;

/// How Caddy runs: in the foreground, logging JSON to stderr; it logs "serving initial
/// configuration" once its servers listen. It is one process, and SIGKILL stops it at once
/// (SIGTERM would wait for the connections still open).
const LAUNCH: Launch = Launch { name: "caddy", ready: "serving initial configuration", failed: None, stop: rustix::process::Signal::KILL };

/// Starts Caddy with one site per entry of `sites` (its body; the harness adds the site
/// address, `http://:PORT` for any host name, bound to 127.0.0.1).
pub fn start(sites: &[String]) -> Foreground {
    Foreground::start(&LAUNCH, sites.len(), |dir, ports| {
        let d = dir.display();
        let blocks: String =
            sites.iter().zip(ports).map(|(body, port)| format!("http://:{port} {{\n\tbind 127.0.0.1\n{body}\n}}\n")).collect();
        let conf = format!("{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {{\n\t\troot {d}/data\n\t}}\n}}\n{blocks}");
        let path = dir.join("Caddyfile");
        std::fs::write(&path, conf).expect("writing the Caddyfile");
        let mut command = Command::new("caddy");
        command.args(["run", "--adapter", "caddyfile", "--config"]).arg(&path).current_dir(dir);
        for var in ["HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"] {
            command.env(var, dir);
        }
        command
    })
}
