//! A Tether handler: one request per fresh instance. `cargo build --release --target
//! wasm32-wasip2` (or `tether build`) makes the component the manifest serves.

use std::time::Duration;

guest::export_handler!(handle);

fn handle() {
    let _ = guest::response::set_header("content-type", "text/plain");
    guest::echo("hello from Rust\n");
    // `?sleep=MS` waits before it finishes: a client that leaves meanwhile stops the guest here.
    let ms = guest::request::query_u64("sleep", 0);
    if ms > 0 {
        let _ = guest::flush();
        std::thread::sleep(Duration::from_millis(ms));
        guest::echo("slept\n");
    }
}
