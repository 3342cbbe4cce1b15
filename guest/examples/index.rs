//! The index of the built-in example manifest, served at `/`: what each example route does and
//! a request to try on it, and where the same examples are in the other languages. Any other
//! path no route serves gets the same page with a 404.
guest::export_handler!(handle);

/// Each example route, what it does, and a request to try (the README's "Try it").
const ROUTES: &[(&str, &str, &str)] = &[
    ("/hello", "answers hello", "curl -i http://HOST/hello"),
    ("/echo", "sends the request body back", "curl --data-binary 'echo me' http://HOST/echo"),
    ("/headers", "lists the request line, headers and CGI variables", "curl 'http://HOST/headers?vars=1'"),
    (
        "/seed-a",
        "logs, sleeps 3 s (?ms=), logs; ?iua=1 ignores user aborts",
        "tether probe 'http://HOST/seed-a?ms=3000' --close-after 300ms --how fin",
    ),
    ("/seed-a2", "writes 22222, flushes and sleeps, six times (?n=, ?ms=)", "curl -N 'http://HOST/seed-a2?n=3&ms=500'"),
    ("/seed-b", "sleeps 2 s, writes 4 KiB, logs its connection status, flushes; six times", "curl -N 'http://HOST/seed-b?ms=200'"),
];

/// The other languages' example components: the route prefix and the language. Each serves every
/// example above and `finish` under its prefix (`/js/hello`).
const LANGUAGES: &[(&str, &str)] = &[("/js", "JavaScript"), ("/python", "Python"), ("/c", "C")];

/// What the other languages' components serve, by last path segment.
const LANGUAGE_EXAMPLES: &str = "hello echo headers seed-a seed-a2 seed-b finish";

fn handle() {
    let path = guest::request::path();
    let host = guest::request::header("host").unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    if path != "/" {
        let _ = guest::response::set_status(404);
    }
    let _ = guest::response::set_header("content-type", "text/plain; charset=utf-8");
    let mut page = String::new();
    if path != "/" {
        page += &format!("no route for {path}\n\n");
    }
    page += "Tether: the built-in example routes (each request runs in a fresh WebAssembly instance)\n\n";
    for (route, what, example) in ROUTES {
        page += &format!("{route:<10} {what}\n           {}\n", example.replace("HOST", &host));
    }
    page += "\nThe same examples, and finish (answers, finishes the request, works on), in other languages:\n\n";
    for (prefix, language) in LANGUAGES {
        page += &format!(
            "{prefix:<10} {language}: {prefix}/NAME, NAME one of: {LANGUAGE_EXAMPLES}\n           curl -i http://{host}{prefix}/hello\n"
        );
    }
    guest::echo(page);
}
