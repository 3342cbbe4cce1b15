//! A real Apache httpd (Debian's `apache2-bin`) for the front-server tests, started on
//! 127.0.0.1 with a generated configuration of its own (its own `ServerRoot`, `PidFile` and
//! runtime directory, modules loaded by path, nothing from `/etc/apache2`), in the foreground,
//! and stopped when dropped.

use crate::foreground::{Foreground, Launch};
use std::process::Command;

/// The Apache binary `apache2-bin` installs.
const APACHE_BIN: &str = "/usr/sbin/apache2";
/// Where Debian keeps Apache's modules.
const MODULES: &str = "/usr/lib/apache2/modules";
/// The modules the sites need, by name and file: the event MPM, access control (without it
/// every request fails with "couldn't check user"), `SetEnv` (a CGI variable of one's own), and
/// the proxy with its FastCGI and HTTP backends.
const MODULE_FILES: [(&str, &str); 6] = [
    ("mpm_event_module", "mod_mpm_event.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("env_module", "mod_env.so"),
    ("proxy_module", "mod_proxy.so"),
    ("proxy_fcgi_module", "mod_proxy_fcgi.so"),
    ("proxy_http_module", "mod_proxy_http.so"),
];

/// How Apache runs: `-DFOREGROUND`, its error log on stderr. `AH00489` is its "resuming normal
/// operations", logged once it has bound its sockets; SIGTERM stops it and its children at once.
const LAUNCH: Launch = Launch { name: "apache", ready: "AH00489", failed: None, stop: rustix::process::Signal::TERM };

/// Starts Apache with one `VirtualHost` per entry of `sites` (its body; the harness adds the
/// `Listen` and the `VirtualHost` on `127.0.0.1:PORT`).
pub fn start(sites: &[String]) -> Foreground {
    Foreground::start(&LAUNCH, sites.len(), |dir, ports| {
        let d = dir.display();
        let modules: String = MODULE_FILES.iter().map(|(name, file)| format!("LoadModule {name} {MODULES}/{file}\n")).collect();
        // Started as root, Apache's children must run as someone else, as nginx's workers do.
        let user = if rustix::process::geteuid().is_root() { "User nobody\nGroup nogroup\n" } else { "" };
        let hosts: String = sites
            .iter()
            .zip(ports)
            .map(|(body, port)| format!("Listen 127.0.0.1:{port}\n<VirtualHost 127.0.0.1:{port}>\n{body}\n</VirtualHost>\n"))
            .collect();
        let conf = format!(
            "ServerRoot {d}\nPidFile {d}/httpd.pid\nDefaultRuntimeDir {d}\nServerName 127.0.0.1\nErrorLog /dev/stderr\n\
             LogLevel notice\nStartServers 1\n{user}{modules}{hosts}"
        );
        let path = dir.join("httpd.conf");
        std::fs::write(&path, conf).expect("writing httpd.conf");
        let mut command = Command::new(APACHE_BIN);
        command.arg("-f").arg(&path).arg("-DFOREGROUND");
        command
    })
}
