//! The request body decoders (chunked and Content-Length), fed as the connection feeds them: the
//! input arrives in pieces whose sizes the first bytes choose, and the decoder is asked for body
//! after each. Never a panic; the body never holds more than was sent, a Content-Length body
//! never more than its length, and what the decoder leaves is what was sent after the body.

#![no_main]

use bytes::BytesMut;
use host::http1::body::{Decoded, Decoder};
use libfuzzer_sys::fuzz_target;

/// Bytes of input that choose the decoder and the piece sizes.
const CONTROL: usize = 9;

fuzz_target!(|data: &[u8]| {
    let Some((control, input)) = data.split_first_chunk::<CONTROL>() else {
        return;
    };
    let length = u64::from_le_bytes(control[1..].try_into().expect("eight bytes"));
    // The low bit picks the decoder; the rest of the byte is the piece size, 1 to 128.
    let chunked = control[0] & 1 == 1;
    let step = usize::from(control[0] >> 1) + 1;
    let mut decoder = if chunked { Decoder::chunked() } else { Decoder::length(length) };
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut body = 0usize;
    loop {
        match decoder.decode(&mut buf) {
            Err(_) => return,
            Ok(Decoded::Data(piece)) => {
                assert!(!piece.is_empty(), "an empty piece of body");
                body += piece.len();
            }
            Ok(Decoded::End) => break,
            Ok(Decoded::NeedMore) if fed == input.len() => return,
            Ok(Decoded::NeedMore) => {
                let n = step.min(input.len() - fed);
                buf.extend_from_slice(&input[fed..fed + n]);
                fed += n;
            }
        }
    }
    assert!(body <= input.len());
    if !chunked {
        assert_eq!(body as u64, length, "a Content-Length body ends at its length");
        assert_eq!(body + buf.len() + (input.len() - fed), input.len(), "the bytes after the body stay");
    }
});
