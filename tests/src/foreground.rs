//! A web server run for a test as a child process in the foreground (nginx, Apache, Caddy):
//! started with a configuration generated for ports picked for it, in a fresh directory of its
//! own, ready once its log says its sockets are bound, and stopped when dropped.

use crate::{TIMEOUT, fresh_dir};
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

/// Attempts at starting a server when a port it was given was taken meanwhile.
const START_ATTEMPTS: usize = 3;

/// What every web server's log says when a port it was to bind is taken (nginx, Apache and
/// Caddy all quote `strerror(EADDRINUSE)`, in one case or the other).
const PORT_TAKEN: &str = "address already in use";

/// How a web server is run and what its log on stderr says.
pub struct Launch {
    /// Its name, for failures.
    pub name: &'static str,
    /// Part of the line it logs once its sockets are bound.
    pub ready: &'static str,
    /// Part of a line it logs when it fails to start, if it does not exit at once after it.
    pub failed: Option<&'static str>,
    /// The signal that stops it and the processes it started.
    pub stop: rustix::process::Signal,
}

/// A running web server.
pub struct Foreground {
    /// The process started (nginx's and Apache's master).
    child: Child,
    /// How it stops.
    stop: rustix::process::Signal,
    /// The port of each site, in the order given.
    pub ports: Vec<u16>,
}

/// A free port on 127.0.0.1 (released again: the server binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Foreground {
    /// Starts the server with `sites` ports: `command` writes its configuration into the
    /// directory it is given for those ports and returns the command that runs it. Returns once
    /// the server logged that it is ready. The ports are free when picked, but another process
    /// may take one before the server binds it: then it tries again with new ones.
    pub fn start(launch: &Launch, sites: usize, command: impl Fn(&Path, &[u16]) -> Command) -> Foreground {
        for _ in 1..START_ATTEMPTS {
            match Self::try_start(launch, sites, &command) {
                Ok(server) => return server,
                Err(said) if said.to_ascii_lowercase().contains(PORT_TAKEN) => continue,
                Err(said) => panic!("{} failed to start; it said:\n{said}", launch.name),
            }
        }
        Self::try_start(launch, sites, &command).unwrap_or_else(|said| panic!("{} failed to start; it said:\n{said}", launch.name))
    }

    /// One attempt of [`Foreground::start`]; `Err` carries what the server logged.
    fn try_start(launch: &Launch, sites: usize, command: &impl Fn(&Path, &[u16]) -> Command) -> Result<Foreground, String> {
        let dir = fresh_dir(launch.name);
        let ports: Vec<u16> = (0..sites).map(|_| free_port()).collect();
        let mut child = command(&dir, &ports)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error} (`scripts/setup --test` installs it)", launch.name));
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
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(launch.ready) => break,
                Ok(line) => {
                    let failed = launch.failed.is_some_and(|failed| line.contains(failed));
                    seen.push(line);
                    if failed {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(seen.join("\n"));
                    }
                }
                // It exited without saying it is ready.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.wait();
                    return Err(seen.join("\n"));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("{} did not start; it said: {seen:#?}", launch.name),
            }
        }
        // Keep draining its log so that it never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Ok(Foreground { child, stop: launch.stop, ports })
    }

    /// `127.0.0.1:PORT` of site `i`.
    pub fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }

    /// Kills the server as a crash or the OOM killer would: SIGKILL to itself and then to the
    /// processes it started (nginx's workers, which hold the connections; the master goes
    /// first so that it cannot start new ones), with no chance to close anything cleanly;
    /// returns once it is gone.
    pub fn kill(&mut self) {
        let pid = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let pids = [pid].into_iter().chain(children.split_whitespace().filter_map(|child| child.parse().ok()));
        for pid in pids.filter_map(|pid: u32| rustix::process::Pid::from_raw(pid.try_into().ok()?)) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Foreground {
    /// Sends the server its stop signal and waits for it; it stops the processes it started.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        if rustix::process::kill_process(pid, self.stop).is_err() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
