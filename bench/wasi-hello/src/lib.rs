//! `hello\n` with `content-type: text/plain` and `content-length: 6`: the response Tether's
//! hello guest sends, from a wasi:http 0.2 proxy component.

use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Hello;

wasi::http::proxy::export!(Hello);

impl wasi::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let headers = Fields::from_list(&[
            ("content-type".to_owned(), b"text/plain".to_vec()),
            ("content-length".to_owned(), b"6".to_vec()),
        ])
        .expect("valid headers");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("a body");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("a body stream");
        // A client gone mid-response is no concern of a benchmark's hello.
        let _ = stream.blocking_write_and_flush(b"hello\n");
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}
