//! The client-abort table ([`tests::matrix`]) through each front end: every seed of the PHP-FPM
//! reference, in both detection modes, left with FIN, RST and a half-close, with
//! ignore-user-abort off and on, must end as the reference's rules say and log the
//! `connection_status` they predict at each step. Each front end runs its rows at once on one
//! server; a failure lists every row that failed.

use tests::matrix::{Transport, run};

#[test]
fn over_http() {
    run(Transport::Http);
}

#[test]
fn behind_nginx_over_fastcgi_tcp() {
    run(Transport::NginxTcp);
}

#[test]
fn behind_nginx_over_fastcgi_unix() {
    run(Transport::NginxUnix);
}
