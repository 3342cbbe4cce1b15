//! Lists the request line and headers as text, and sets a custom response header. `?status=N`
//! sets the response status and `?flush=1` flushes the head before the listing.
guest::export_handler!(handle);

fn handle() {
    let _ = guest::response::set_header("content-type", "text/plain");
    let _ = guest::response::set_header("x-tether-guest", "headers");
    if let Some(status) = guest::request::query_param("status").and_then(|s| s.parse().ok()) {
        let _ = guest::response::set_status(status);
    }
    if guest::request::query_param("flush").is_some() {
        let _ = guest::flush();
    }
    guest::echo(format!("{} {} {}\n", guest::request::method(), guest::request::target(), guest::request::protocol()));
    for (name, value) in guest::request::headers() {
        guest::echo(format!("{name}: {}\n", String::from_utf8_lossy(&value)));
    }
}
