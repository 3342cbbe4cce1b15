//! Answers `hello` — the smallest useful guest, used for throughput figures.
guest::export_handler!(handle);

fn handle() {
    let _ = guest::response::set_header("content-type", "text/plain");
    guest::echo("hello\n");
}
