//! Sends the request body back, with the request's content type.
guest::export_handler!(handle);

fn handle() {
    if let Some(content_type) = guest::request::header("content-type") {
        let _ = guest::response::set_header("content-type", &content_type);
    }
    loop {
        match guest::request::read_body(64 * 1024) {
            Ok(chunk) if chunk.is_empty() => break,
            Ok(chunk) => guest::echo(chunk),
            Err(error) => {
                guest::log(format!("body error: {}", error.name()));
                let _ = guest::response::set_status(400);
                break;
            }
        }
    }
}
