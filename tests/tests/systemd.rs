//! systemd: `tether serve` started by Debian's `systemd-socket-activate` with an HTTP and a
//! FastCGI socket, named as the example units in `host/systemd/` name them
//! (`FileDescriptorName=`), and telling the test, as the service manager on `NOTIFY_SOCKET`,
//! that it is ready, reloading, ready again and stopping.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use tests::Manifest;
use tests::fcgi::FcgiClient;

/// Starts `tether serve` under `systemd-socket-activate`, passing it a socket per `(name, path)`,
/// and waits until the launcher listens on all of them (it starts the server at the first
/// connection). Returns the process and the rest of its stderr: the server's errors.
fn activate(dir: &Path, sockets: &[(&str, &Path)], notify: Option<&Path>) -> (Child, BufReader<ChildStderr>) {
    let manifest = dir.join("tether.toml");
    std::fs::write(&manifest, Manifest::new().route("/", "hello", "").to_string()).expect("writing the manifest");
    let mut command = Command::new("systemd-socket-activate");
    for (_, path) in sockets {
        command.arg("-l").arg(path);
    }
    let names: Vec<&str> = sockets.iter().map(|(name, _)| *name).collect();
    command.arg(format!("--fdname={}", names.join(":")));
    // The launcher passes the server only the variables it is told to (`-E`).
    if let Some(notify) = notify {
        command.arg("-E").arg(format!("NOTIFY_SOCKET={}", notify.display()));
    }
    command
        .arg(tests::tether_bin())
        .args(["serve"])
        .arg(&manifest)
        .arg("--cache-dir")
        .arg(tests::scratch_dir().join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("starting systemd-socket-activate (Debian's systemd package)");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut listening = 0;
    let mut line = String::new();
    while listening < sockets.len() {
        line.clear();
        assert!(stderr.read_line(&mut line).expect("reading the launcher's output") > 0, "the launcher ended");
        listening += usize::from(line.starts_with("Listening on "));
    }
    (child, stderr)
}

/// The `FileDescriptorName=` of the example socket unit `unit` (in `host/systemd/`).
fn fd_name(unit: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/systemd").join(unit);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    text.lines().find_map(|line| line.strip_prefix("FileDescriptorName=")).unwrap_or_else(|| panic!("{unit} names no socket")).to_owned()
}

/// The next state change the server sent to the notify socket.
fn next_notice(notify: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = notify.recv(&mut buf).expect("a notification from the server");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn signal(child: &Child, signal: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_child(child), signal).expect("signalling the server");
}

#[test]
fn socket_activated_server_serves_the_passed_sockets_and_notifies_its_states() {
    let dir = tests::fresh_dir("systemd");
    let (http, fastcgi) = (dir.join("http.sock"), dir.join("fastcgi.sock"));
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("binding the notify socket");
    notify.set_read_timeout(Some(tests::TIMEOUT)).expect("timeout");
    let (http_name, fastcgi_name) = (fd_name("tether.socket"), fd_name("tether-fastcgi.socket"));
    let (mut server, mut errors) = activate(&dir, &[(&http_name, &http), (&fastcgi_name, &fastcgi)], Some(&notify_path));
    std::thread::spawn(move || std::io::copy(&mut errors, &mut std::io::stderr()));

    // The first connection starts the server, which then answers it on the passed socket.
    let mut client = UnixStream::connect(&http).expect("connecting to the HTTP socket");
    client.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").expect("sending");
    let mut response = String::new();
    client.read_to_string(&mut response).expect("reading the response");
    assert!(response.starts_with("HTTP/1.1 200 ") && response.ends_with("\r\n\r\nhello\n"), "{response}");
    assert_eq!(next_notice(&notify), "READY=1\n");

    let mut fcgi = FcgiClient::connect(&format!("unix:{}", fastcgi.display()));
    fcgi.request(1, "GET", "/", b"");
    assert_eq!(fcgi.reply(1).body(), "hello\n");

    signal(&server, rustix::process::Signal::HUP);
    let reloading = next_notice(&notify);
    assert!(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC=") && reloading.ends_with('\n'), "{reloading:?}");
    assert_eq!(next_notice(&notify), "READY=1\n");

    signal(&server, rustix::process::Signal::TERM);
    assert_eq!(next_notice(&notify), "STOPPING=1\n");
    assert_eq!(server.wait().expect("waiting for the server").code(), Some(0));
    // The sockets are the service manager's: the server leaves their files.
    assert!(http.exists() && fastcgi.exists());
}

#[test]
fn a_passed_socket_with_another_name_is_a_clear_error() {
    let dir = tests::fresh_dir("systemd-name");
    let web = dir.join("web.sock");
    let (mut server, mut errors) = activate(&dir, &[("web", &web)], None);
    let _client = UnixStream::connect(&web).expect("connecting starts the server");
    let mut said = String::new();
    errors.read_to_string(&mut said).expect("reading the server's errors");
    assert_eq!(server.wait().expect("waiting for the server").code(), Some(1), "{said}");
    assert!(said.contains("a socket named `web`: name each socket `http` or `fastcgi`"), "{said}");
}
