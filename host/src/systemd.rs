//! systemd: the sockets a service manager passes (socket activation, `LISTEN_FDS`, each named
//! `http` or `fastcgi` by its unit's `FileDescriptorName=`), and the state changes
//! `Type=notify-reload` expects: `READY=1` once the listeners accept, `RELOADING=1` (with
//! `MONOTONIC_USEC`) and `READY=1` around a reload, `STOPPING=1` at shutdown. Both through the
//! sd-notify crate; without systemd's variables, neither does anything.

use crate::request::Protocol;
use anyhow::Context as _;
use sd_notify::NotifyState;
use std::os::fd::{FromRawFd as _, OwnedFd};

/// The file descriptor names that say which front end serves a passed socket.
const NAMES: [(&str, Protocol); 2] = [("http", Protocol::Http), ("fastcgi", Protocol::FastCgi)];

/// The sockets passed to this process, by protocol, taken over once: an empty list without
/// socket activation. A socket whose name is neither `http` nor `fastcgi` is an error.
pub fn passed_sockets() -> anyhow::Result<Vec<(Protocol, OwnedFd)>> {
    let passed = sd_notify::listen_fds_with_names().context("reading LISTEN_FDS")?;
    passed
        .map(|(fd, name)| {
            let protocol = NAMES.iter().find(|(known, _)| *known == name).map(|(_, protocol)| *protocol).with_context(|| {
                format!("socket activation passed a socket named `{name}`: name each socket `http` or `fastcgi` (FileDescriptorName=)")
            })?;
            // SAFETY: `listen_fds_with_names` yields the descriptors the service manager passed
            // to this process (LISTEN_PID is checked), which nothing else in it owns, and reads
            // them only once: taking ownership of each is sound.
            #[allow(unsafe_code)]
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            Ok((protocol, fd))
        })
        .collect()
}

/// Tells the service manager, if there is one, of `state`; a failure is logged and otherwise
/// ignored, as the server serves on either way.
fn notify(state: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(state) {
        tracing::warn!(%error, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// The listeners accept connections.
pub fn ready() {
    notify(&[NotifyState::Ready]);
}

/// A reload starts.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(error) => tracing::warn!(%error, "cannot read CLOCK_MONOTONIC for the service manager"),
    }
}

/// The server shuts down.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}
