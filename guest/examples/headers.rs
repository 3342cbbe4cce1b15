//! Lists the request line and headers as text, and sets a custom response header. `?status=N`
//! sets the response status, `?flush=1` flushes the head before the listing, `?vars=1` adds the
//! server variables (`var NAME=VALUE` lines), and `?param=NAME`, `?header=NAME` and
//! `?var=NAME` end it with what the SDK makes of that query parameter, header and variable.
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
    guest::echo(format!("remote {:?}\n", guest::request::remote_addr()));
    guest::echo(format!("scheme {}\n", guest::request::scheme()));
    if guest::request::query_param("vars").is_some() {
        for (name, value) in guest::request::server_vars() {
            guest::echo(format!("var {name}={}\n", String::from_utf8_lossy(&value)));
        }
    }
    if let Some(name) = guest::request::query_param("param") {
        guest::echo(format!("param {name:?} = {:?}\n", guest::request::query_param(&name)));
    }
    if let Some(name) = guest::request::query_param("header") {
        guest::echo(format!("header {name:?} = {:?}\n", guest::request::header(&name)));
    }
    if let Some(name) = guest::request::query_param("var") {
        guest::echo(format!("server var {name:?} = {:?}\n", guest::request::server_var(&name)));
    }
}
