//! Seed A2: `n` times { write "22222"; flush; log; sleep; log the status }.
//!
//! Query: `n` (default 6), `ms` (sleep, default 1000), `first_ms` (the first sleep, default
//! `ms`: a window for an experiment's client to close in), `iua=1`, `report=1` (an aborted
//! write returns an error instead of trapping: `report_aborted_writes`). Each flush is a real
//! socket write, as PHP's `flush()` with `output_buffering=0`.
guest::export_handler!(handle);

fn handle() {
    if guest::request::query_u64("iua", 0) == 1 {
        guest::ignore_user_abort(Some(true));
    }
    if guest::request::query_u64("report", 0) == 1 {
        guest::report_aborted_writes();
    }
    let n = guest::request::query_u64("n", 6);
    let ms = guest::request::query_u64("ms", 1000);
    let first_ms = guest::request::query_u64("first_ms", ms);
    guest::log(format!("start cs={}", guest::connection_status()));
    for i in 1..=n {
        guest::echo("22222");
        let flushed = guest::flush().map_err(|e| e.name());
        guest::log(format!("w {i} cs={} flush={flushed:?}", guest::connection_status()));
        std::thread::sleep(std::time::Duration::from_millis(if i == 1 { first_ms } else { ms }));
        guest::log(format!("iter {i} cs={}", guest::connection_status()));
    }
    guest::log(format!("end cs={}", guest::connection_status()));
}
