//! The FastCGI record decoder and what the connection decodes from records: any stream of bytes
//! is split into records (§3.3), each BEGIN_REQUEST body parsed (§5.1), and the PARAMS stream's
//! name-value pairs (§3.4) parsed and mapped to a request as the connection maps them. Never a
//! panic, and decoding never consumes more than it was given.

#![no_main]

use bytes::BytesMut;
use host::fastcgi::conn::{MAX_PARAMS, MAX_PARAMS_BYTES};
use host::fastcgi::mapping;
use host::fastcgi::record::{self, BeginRequest, kind};
use host::manifest::RouteBy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut params = Vec::new();
    loop {
        let before = buf.len();
        match record::decode(&mut buf) {
            Ok(Some(record)) => {
                assert!(buf.len() < before, "a record consumes bytes");
                match record.kind {
                    kind::BEGIN_REQUEST => {
                        let _ = BeginRequest::parse(&record.content);
                    }
                    kind::PARAMS if params.len() + record.content.len() <= MAX_PARAMS_BYTES => {
                        params.extend_from_slice(&record.content);
                    }
                    kind::GET_VALUES => {
                        let _ = record::parse_pairs(&record.content, MAX_PARAMS);
                    }
                    _ => {}
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    if let Ok(pairs) = record::parse_pairs(&params, MAX_PARAMS) {
        for route_by in [RouteBy::RequestUri, RouteBy::ScriptName] {
            let _ = mapping::request(pairs.clone(), route_by);
        }
    }
});
