//! The Rust SDK for Tether guests.
//!
//! A guest is a Wasm component that handles one request per instance. It reads the request, sets
//! the response head, writes the body and returns. The API follows PHP's request-lifetime
//! functions, so a PHP programmer finds `echo`, `flush`, `connection_status`,
//! `ignore_user_abort`, `finish_request` and `set_time_limit` where they expect them.
//!
//! ```ignore
//! guest::export_handler!(handle);
//!
//! fn handle() {
//!     guest::response::set_header("content-type", "text/plain").ok();
//!     guest::echo("hello\n");
//! }
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`: the result is a component the Tether
//! host can serve. [`log`] writes to stdout, which the host copies into its log, tagged with the
//! request. Stderr (`eprintln!`, panic messages) goes to the log too and, over FastCGI, to the
//! web server as `STDERR` records, like PHP's errors.
//!
//! # Aborts
//! Unless the guest calls [`ignore_user_abort`]`(Some(true))`, a client abort traps the guest
//! wherever it is; no code after that point runs. With it, the guest keeps running, output is
//! discarded and [`connection_status`] reports [`CONNECTION_ABORTED`]. In write mode a guest
//! that calls [`report_aborted_writes`] gets an error from the write that fails, and stops
//! itself.
#![deny(missing_docs)]

/// The raw bindings generated from `wit/tether.wit`. The functions in this crate wrap them; the
/// module is public for the export macro and for guests that want the raw interface.
#[allow(missing_docs, unsafe_code)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "handler",
        pub_export_macro: true,
        default_bindings_module: "guest::bindings",
    });
}

use bindings::tether::guest::{conn, lifecycle, output};
use std::io::Write as _;

pub use bindings::tether::guest::output::OutputError;

/// [`connection_status`] bit: the connection is fine.
pub const CONNECTION_NORMAL: u8 = 0;
/// [`connection_status`] bit: the client went away.
pub const CONNECTION_ABORTED: u8 = 1;
/// [`connection_status`] bit: a time limit expired.
pub const CONNECTION_TIMEOUT: u8 = 2;

/// Exports `handler` (a `fn()`) as the component's `handle` function.
#[macro_export]
macro_rules! export_handler {
    ($handler:path) => {
        struct __TetherGuest;
        impl $crate::bindings::Guest for __TetherGuest {
            fn handle() {
                $handler()
            }
        }
        $crate::bindings::export!(__TetherGuest with_types_in $crate::bindings);
    };
}

/// Appends `bytes` to the output buffer, ignoring whether the client still listens, like PHP's
/// `echo`. Use [`write`] to see the outcome.
pub fn echo(bytes: impl AsRef<[u8]>) {
    // Like `echo`, delivery problems are not the writer's concern: an abort traps the guest
    // unless it ignores aborts, and then `connection_status` tells.
    let _ = write(bytes);
}

/// Appends `bytes` to the output buffer; a full buffer is flushed to the client.
pub fn write(bytes: impl AsRef<[u8]>) -> Result<(), OutputError> {
    output::write(bytes.as_ref())
}

/// Sends the buffered output to the client and returns once the socket write returned, like
/// PHP's `ob_flush(); flush();`.
pub fn flush() -> Result<(), OutputError> {
    output::flush()
}

/// The connection status bits: [`CONNECTION_NORMAL`], [`CONNECTION_ABORTED`],
/// [`CONNECTION_TIMEOUT`] (PHP's `connection_status()`).
pub fn connection_status() -> u8 {
    conn::status()
}

/// Whether the client went away (PHP's `connection_aborted()`).
pub fn connection_aborted() -> bool {
    conn::aborted()
}

/// Returns the previous ignore-user-abort setting and, given `Some`, changes it
/// (PHP's `ignore_user_abort()`).
pub fn ignore_user_abort(setting: Option<bool>) -> bool {
    conn::ignore_user_abort(setting)
}

/// In write mode, makes the write that finds the client gone return an error instead of
/// trapping, as all later output then does, so that the guest stops itself and runs its own
/// clean-up (PHP's bailout, which runs shutdown functions). Prompt mode still traps.
pub fn report_aborted_writes() {
    conn::report_aborted_writes()
}

/// Completes the response and releases the connection; the guest keeps running
/// (PHP's `fastcgi_finish_request()`).
pub fn finish_request() -> bool {
    lifecycle::finish_request()
}

/// Restarts the execution-time budget with `seconds`, 0 meaning unlimited
/// (PHP's `set_time_limit()`).
pub fn set_time_limit(seconds: u32) {
    lifecycle::set_time_limit(seconds)
}

/// Writes one line to stdout, which the host copies into its log tagged with the request (and
/// nowhere else: unlike stderr, it never reaches the client's side of the connection). The
/// line is written with a single write so that lines never interleave.
pub fn log(line: impl AsRef<str>) {
    let mut buf = String::with_capacity(line.as_ref().len() + 1);
    buf.push_str(line.as_ref());
    buf.push('\n');
    // A guest has nowhere better to report a failed log write.
    let _ = std::io::stdout().write_all(buf.as_bytes());
}

/// The request being handled.
pub mod request {
    use crate::bindings::tether::guest::request as raw;

    pub use raw::BodyError;

    /// The request method, for example `GET`.
    pub fn method() -> String {
        raw::method()
    }

    /// The request target: path plus query.
    pub fn target() -> String {
        raw::target()
    }

    /// The protocol version: `HTTP/1.0` or `HTTP/1.1`, or over FastCGI what the web server
    /// reports (`HTTP/2.0`...).
    pub fn protocol() -> String {
        raw::protocol()
    }

    /// The client's address, `IP:PORT` (over FastCGI as the web server reports it); `None` over
    /// a Unix socket (PHP's `$_SERVER['REMOTE_ADDR']`).
    pub fn remote_addr() -> Option<String> {
        raw::remote_addr()
    }

    /// `https` when the client's connection was TLS (behind a web server that terminates it and
    /// says so over FastCGI), otherwise `http` (PHP's `$_SERVER['REQUEST_SCHEME']`).
    pub fn scheme() -> String {
        raw::scheme()
    }

    /// The path part of the target.
    pub fn path() -> String {
        let target = raw::target();
        match target.split_once('?') {
            Some((path, _)) => path.to_owned(),
            None => target,
        }
    }

    /// The query string, without the `?` (PHP's `$_SERVER['QUERY_STRING']`).
    pub fn query_string() -> Option<String> {
        raw::target().split_once('?').map(|(_, query)| query.to_owned())
    }

    /// The query parameter `name`, as PHP's `$_GET[name]`: names and values percent-decoded
    /// (`+` is a space), and the last of several wins.
    pub fn query_param(name: &str) -> Option<String> {
        query_string()?.split('&').rev().find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(key) == name).then(|| form_decode(value))
        })
    }

    /// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte; a `%`
    /// not followed by two hex digits stays as it is, and bytes that are not UTF-8 become U+FFFD.
    fn form_decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
            match (bytes[i], hex) {
                (b'%', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (b'+', _) => {
                    out.push(b' ');
                    i += 1;
                }
                (byte, _) => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The value of the query parameter `name` parsed as a number, or `default`.
    pub fn query_u64(name: &str, default: u64) -> u64 {
        query_param(name).and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    /// All headers in arrival order, names lowercased, values as raw bytes.
    pub fn headers() -> Vec<(String, Vec<u8>)> {
        raw::headers()
    }

    /// The header `name` (case-insensitive), several fields of that name joined with `, `
    /// (RFC 9110 §5.3); `None` if there is none or a value is not UTF-8 (see [`headers`]).
    pub fn header(name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        let values: Vec<Vec<u8>> = raw::headers().into_iter().filter(|(n, _)| *n == name).map(|(_, v)| v).collect();
        if values.is_empty() {
            return None;
        }
        let values: Vec<String> = values.into_iter().map(String::from_utf8).collect::<Result<_, _>>().ok()?;
        Some(values.join(", "))
    }

    /// The CGI variables besides the headers, in order, values as raw bytes (PHP's `$_SERVER`
    /// without its `HTTP_*` entries): over FastCGI every non-header parameter the web server
    /// sent (including its `fastcgi_param` additions), over HTTP the ones Tether knows.
    pub fn server_vars() -> Vec<(String, Vec<u8>)> {
        raw::server_vars()
    }

    /// The CGI variable `name` (PHP's `$_SERVER[name]`, case-sensitive like it); `None` if there
    /// is none or its value is not UTF-8 (see [`server_vars`]).
    pub fn server_var(name: &str) -> Option<String> {
        let (_, value) = raw::server_vars().into_iter().rev().find(|(n, _)| n == name)?;
        String::from_utf8(value).ok()
    }

    /// Reads the next body chunk of at most `max` bytes; an empty chunk means the end.
    pub fn read_body(max: u32) -> Result<Vec<u8>, BodyError> {
        raw::read_body(max)
    }

    /// Reads the whole body. On an error the bytes read before it are dropped; read with
    /// [`read_body`] to keep them.
    pub fn body() -> Result<Vec<u8>, BodyError> {
        /// Bytes asked for per read; the host may return fewer.
        const CHUNK: u32 = 64 * 1024;
        let mut body = Vec::new();
        loop {
            let chunk = raw::read_body(CHUNK)?;
            if chunk.is_empty() {
                return Ok(body);
            }
            body.extend_from_slice(&chunk);
        }
    }
}

/// The response head.
pub mod response {
    use crate::bindings::tether::guest::response as raw;

    pub use raw::HeadError;

    /// Sets the status code (default 200).
    pub fn set_status(code: u16) -> Result<(), HeadError> {
        raw::set_status(code)
    }

    /// Sets a header, replacing earlier ones of the same name.
    pub fn set_header(name: &str, value: &str) -> Result<(), HeadError> {
        raw::set_header(name, value)
    }

    /// Adds a header, keeping earlier ones of the same name.
    pub fn append_header(name: &str, value: &str) -> Result<(), HeadError> {
        raw::append_header(name, value)
    }

    /// Whether the head has been sent.
    pub fn headers_sent() -> bool {
        raw::headers_sent()
    }

    /// The status code set so far (PHP's `http_response_code()`).
    pub fn status() -> u16 {
        raw::status()
    }

    /// The headers set so far, names lowercased (PHP's `headers_list()`).
    pub fn headers() -> Vec<(String, String)> {
        raw::headers()
    }

    /// Removes every header called `name` (PHP's `header_remove($name)`).
    pub fn remove_header(name: &str) -> Result<(), HeadError> {
        raw::remove_header(name)
    }
}
