//! Where guests run (ARCHITECTURE.md, *Threads*): on the guest threads by default; with
//! `guests_start_on = "io-threads"`, a short request runs to its end on the I/O thread that
//! read it, and a guest that computes leaves the I/O threads at the first epoch tick that finds
//! it in Wasm. Read from the CPU time the kernel accounts to the server's threads.

use std::collections::HashMap;
use tests::{Client, Manifest, Server, get};

/// Name of the threads that serve sockets and start guests.
const IO_THREADS: &str = "tether-io";
/// Name of the threads that run computing guests.
const GUEST_THREADS: &str = "tether-guest";

/// CPU time (user + system, in clock ticks) of the server's threads, summed by thread name.
fn cpu_by_thread_name(server: &Server) -> HashMap<String, u64> {
    let mut by_name = HashMap::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", server.pid())).expect("the server's threads") {
        // A thread that ended between listing and reading has no CPU time to add.
        let Ok(stat) = std::fs::read_to_string(task.expect("a thread").path().join("stat")) else { continue };
        // `pid (name) state ...`: the name may hold spaces, the fields after it do not.
        let (name, rest) = stat.split_once(" (").and_then(|(_, rest)| rest.rsplit_once(") ")).expect("a stat line");
        let fields: Vec<&str> = rest.split(' ').collect();
        // After the name, field 3 (state) comes first; utime and stime are fields 14 and 15.
        let ticks: u64 = fields[11..=12].iter().map(|f| f.parse::<u64>().expect("a tick count")).sum();
        *by_name.entry(name.to_owned()).or_default() += ticks;
    }
    by_name
}

/// CPU ticks each of the I/O and the guest threads spent while `work` ran.
fn cpu_during(server: &Server, work: impl FnOnce()) -> (u64, u64) {
    let before = cpu_by_thread_name(server);
    work();
    let after = cpu_by_thread_name(server);
    let spent = |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    (spent(IO_THREADS), spent(GUEST_THREADS))
}

/// A server whose guests start on the I/O threads, with `manifest`'s routes.
fn starting_on_io_threads(manifest: Manifest) -> Server {
    Server::start(&manifest.server("guests_start_on = \"io-threads\""))
}

/// CPU ticks of the I/O and the guest threads while `client` makes 5,000 hello requests.
fn cpu_for_hellos(server: &Server) -> (u64, u64) {
    let mut client = Client::connect(server.addr());
    cpu_during(server, || {
        for _ in 0..5_000 {
            client.get("/hello");
            assert_eq!(client.read_response().status, 200);
        }
    })
}

#[test]
fn by_default_guests_run_on_the_guest_threads() {
    let server = Server::start(&Manifest::new().route("/hello", "hello", ""));
    let (io, guest) = cpu_for_hellos(&server);
    assert!(guest >= 10 && guest > io, "hello guests ran on the guest threads: io {io} ticks, guest {guest}");
}

#[test]
fn a_computing_guest_leaves_the_io_threads() {
    let server = starting_on_io_threads(Manifest::new().route("/spin", "spin", ""));
    let (io, guest) = cpu_during(&server, || assert_eq!(get(server.addr(), "/spin?ms=1500").status, 200));
    assert!(guest >= 10, "the spinning guest ran on the guest threads: io {io} ticks, guest {guest}");
    assert!(io * 4 <= guest, "only the guest's first tick may run on an I/O thread: io {io} ticks, guest {guest}");
}

#[test]
fn short_requests_run_to_their_end_on_the_io_threads() {
    let server = starting_on_io_threads(Manifest::new().route("/hello", "hello", ""));
    let (io, guest) = cpu_for_hellos(&server);
    assert!(io >= 10 && io >= guest * 2, "hello requests stayed on the I/O threads: io {io} ticks, guest {guest}");
}

#[test]
fn a_client_leaving_is_seen_when_its_guest_started_on_an_io_thread() {
    let server = starting_on_io_threads(Manifest::new().route("/spin", "spin", "max_execution_time = 0").route("/sleep", "seed_a", ""));
    // A computing guest (moved to a guest thread at its first tick) and a sleeping one (parked
    // where it started): both are stopped when the client leaves.
    for (uri, route) in [("/spin?ms=20000", "/spin"), ("/sleep?ms=20000", "/sleep")] {
        let mut client = Client::connect(server.addr());
        client.get(uri);
        server.started(route);
        client.close_rst();
        assert_eq!(server.access(uri)["outcome"], "aborted-trapped", "{uri}");
    }
}
