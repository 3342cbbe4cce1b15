//! A short soak (`tests::soak`): 20,000 requests over mixed routes, a tenth of them aborted by
//! FIN or RST at random points. Every request not aborted gets its exact response, every
//! request ends with an outcome its guest allows, and afterwards the server holds no more file
//! descriptors and threads than before it.

use tests::soak::{self, Soak};
use tests::{LOG_QUIET, Options, Server};

/// The soak, and the shorter one before it that builds what the first requests build lazily.
const SOAK: Soak = Soak { requests: 20_000, clients: 8, abort_percent: 10, every: 5_000 };
const WARM_UP: Soak = Soak { requests: 500, ..SOAK };

#[test]
fn twenty_thousand_mixed_requests_with_aborts_end_as_expected_and_leave_nothing_behind() {
    let server = Server::start_options(&soak::manifest(), &Options { log: Some(LOG_QUIET), ..Options::default() });
    let warm = soak::run(&server, WARM_UP);
    let baseline = warm.checkpoints.last().expect("a last checkpoint").usage;
    let report = soak::run(&server, SOAK);
    assert_eq!(report.unexpected, 0, "responses other than expected: {:#?}", report.examples);
    assert_eq!(report.unexpected_outcomes(), 0, "outcomes: {:?}", report.outcomes);
    assert!(report.aborted > 0, "no request was aborted");
    server.settles_to(baseline);
}
