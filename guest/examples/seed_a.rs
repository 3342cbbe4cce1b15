//! Seed A: log, sleep, log — a request that produces no output.
//!
//! Query: `ms` (sleep, default 3000), `iua=1` (ignore user abort, as the reference script's
//! `ignore_user_abort(true)`). Under PHP such a script never notices the client leaving.
guest::export_handler!(handle);

fn handle() {
    if guest::request::query_u64("iua", 0) == 1 {
        guest::ignore_user_abort(Some(true));
    }
    let ms = guest::request::query_u64("ms", 3000);
    guest::log(format!("start cs={}", guest::connection_status()));
    std::thread::sleep(std::time::Duration::from_millis(ms));
    guest::log(format!("end cs={}", guest::connection_status()));
}
