<?php
// The seeds of the client-abort table (tests/src/matrix.rs) in PHP, for builtin:php: one script
// serving every seed, picked by the last segment of the request path (`seed-a`, `seed-a2`,
// `seed-b`, `finish`), with the query parameters and log lines of the other languages' seeds
// (guest/examples/seed_*.rs, guest/fixtures/finish.rs). A route serves it for every path with
// `env = { SCRIPT_NAME = "/seeds.php" }`. Lines go to the host's log through syslog(), which
// builtin:php writes to the host's log only: error_log() writes to stderr, which behind nginx
// also becomes FastCGI STDERR records (as php-fpm's `fastcgi.logging` sends them), socket
// writes that would change where an abort is seen.
//
// The seeds write with PHP's own output buffer off, as the reference's A2 pool ran
// (`output_buffering=0`): an echo goes to the route's output buffer, and flush() makes the
// socket write. A flush's result is read back as the other languages print theirs: `Ok(())`,
// or `Err("aborted")` once the connection is aborted.

function line(string $text): void {
    syslog(LOG_INFO, $text);
}

function say(string $label, string $rest = ''): void {
    line($label . ' cs=' . connection_status() . $rest);
}

function q(string $name, int $default): int {
    return isset($_GET[$name]) ? (int)$_GET[$name] : $default;
}

function flushed(): string {
    flush();
    return connection_aborted() ? 'Err("aborted")' : 'Ok(())';
}

function sleep_ms(int $ms): void {
    usleep($ms * 1000);
}

// Seed A: log, sleep (`ms`), log: a request that produces no output.
function seed_a(): void {
    say('start');
    sleep_ms(q('ms', 3000));
    say('end');
}

// Seed A2: `n` times { write "22222"; flush; log; sleep; log }.
function seed_a2(): void {
    $ms = q('ms', 1000);
    $first_ms = q('first_ms', $ms);
    say('start');
    for ($i = 1; $i <= q('n', 6); $i++) {
        echo '22222';
        say("w $i", ' flush=' . flushed());
        sleep_ms($i === 1 ? $first_ms : $ms);
        say("iter $i");
    }
    say('end');
}

// Seed B: 6 times { sleep; write 4096 bytes; log; stop line if aborted; flush, log }.
function seed_b(): void {
    $ms = q('ms', 2000);
    $first_ms = q('first_ms', $ms);
    say('start');
    for ($i = 0; $i < 6; $i++) {
        sleep_ms($i === 0 ? $first_ms : $ms);
        echo str_repeat('a', 4096);
        say("iter $i");
        if (connection_aborted()) {
            line("stop $i");
        }
        say("w $i", ' flush=' . flushed());
    }
    say('done');
}

// Answers, calls fastcgi_finish_request(), keeps working for `ms`.
function finish(): void {
    echo "response-body\n";
    $finished = fastcgi_finish_request();
    say('finished ' . ($finished ? 'true' : 'false'));
    sleep_ms(q('ms', 2000));
    say('after_sleep');
    say('end');
}

while (ob_get_level() > 0) {
    ob_end_flush();
}
if (q('iua', 0) === 1) {
    ignore_user_abort(true);
}
$seeds = ['seed-a' => 'seed_a', 'seed-a2' => 'seed_a2', 'seed-b' => 'seed_b', 'finish' => 'finish'];
$seed = basename(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH));
if (!isset($seeds[$seed])) {
    http_response_code(404);
    echo "no seed $seed\n";
    return;
}
$seeds[$seed]();
