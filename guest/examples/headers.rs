//! Lists the request line and headers as text, and sets a custom response header.
guest::export_handler!(handle);

fn handle() {
    let _ = guest::response::set_header("content-type", "text/plain");
    let _ = guest::response::set_header("x-tether-guest", "headers");
    guest::echo(format!("{} {} {}\n", guest::request::method(), guest::request::target(), guest::request::protocol()));
    for (name, value) in guest::request::headers() {
        guest::echo(format!("{name}: {}\n", String::from_utf8_lossy(&value)));
    }
}
