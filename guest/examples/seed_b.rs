//! Seed B: 6 times { sleep; write 4096 bytes; log the status; flush }.
//!
//! Query: `ms` (sleep, default 2000), `first_ms` (the first sleep, default `ms`: a window for an
//! experiment's client to close in), `iua=1`, `outk` (only the first `outk` iterations write,
//! default 6). The example manifest gives this route a 64 KiB output buffer, the analogue of the
//! reference script's `ob_start()`, so each iteration's bytes leave at its flush.
guest::export_handler!(handle);

fn handle() {
    if guest::request::query_u64("iua", 0) == 1 {
        guest::ignore_user_abort(Some(true));
    }
    let ms = guest::request::query_u64("ms", 2000);
    let first_ms = guest::request::query_u64("first_ms", ms);
    let outk = guest::request::query_u64("outk", 6);
    guest::log(format!("start cs={}", guest::connection_status()));
    for i in 0..6 {
        std::thread::sleep(std::time::Duration::from_millis(if i == 0 { first_ms } else { ms }));
        if i < outk {
            guest::echo([b'a'; 4096]);
        }
        guest::log(format!("iter {i} cs={}", guest::connection_status()));
        if guest::connection_aborted() {
            guest::log(format!("stop {i}"));
        }
        if i < outk {
            let flushed = guest::flush().map_err(|e| e.name());
            guest::log(format!("w {i} cs={} flush={flushed:?}", guest::connection_status()));
        }
    }
    guest::log(format!("done cs={}", guest::connection_status()));
}
