//! Picks a route for a request path: the longest route prefix that matches at a path-segment
//! boundary (`/hello` matches `/hello` and `/hello/x`, not `/helloworld`; `/` matches all),
//! after normalising the path as a web server in front does before matching its own locations.

use std::borrow::Cow;

/// A routing table over values of type `T`.
#[derive(Debug)]
pub struct Router<T> {
    /// (prefix, value), longest prefix first.
    routes: Vec<(String, T)>,
}

impl<T> Router<T> {
    /// A router over `(prefix, value)` pairs. Prefixes are normalised without a trailing slash.
    pub fn new(routes: impl IntoIterator<Item = (String, T)>) -> Self {
        let mut routes: Vec<(String, T)> = routes
            .into_iter()
            .map(|(prefix, value)| {
                let prefix = if prefix.len() > 1 { prefix.trim_end_matches('/').to_owned() } else { prefix };
                (prefix, value)
            })
            .collect();
        routes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Self { routes }
    }

    /// The value of the best route for `path` (as [`normalize`] has it), with its prefix.
    pub fn route(&self, path: &str) -> Option<(&str, &T)> {
        let path = normalize(path);
        self.routes.iter().find(|(prefix, _)| matches(prefix, &path)).map(|(prefix, value)| (prefix.as_str(), value))
    }

    /// All routes, longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.routes.iter().map(|(prefix, value)| (prefix.as_str(), value))
    }
}

/// The path a route is picked by: percent-encoded unreserved characters decoded (RFC 3986
/// §6.2.2.2), repeated slashes merged and `.` and `..` segments removed (§5.2.4), as nginx
/// does before matching its locations. Routing the raw path would let `/admin/../x`, which
/// nginx lets through as `/x`, run the `/admin` route. The guest still sees the target as sent.
pub fn normalize(path: &str) -> Cow<'_, str> {
    if !path.starts_with('/') || !(path.contains('%') || path.contains("//") || path.contains("/.")) {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    // A path ending in a slash or a dot segment names a directory: it keeps its trailing slash.
    if out.is_empty() || decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..") {
        out.push('/');
    }
    Cow::Owned(out)
}

/// `path` with each `%XX` that encodes an unreserved character (letter, digit, `-`, `.`, `_`,
/// `~`) replaced by that character; other escapes stay as they are.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let offset = path.len() - rest.len() + at;
        let decoded = bytes
            .get(offset + 1..offset + 3)
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())
            .filter(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(byte));
        match decoded {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_segment_prefix_wins() {
        let router = Router::new([("/".to_owned(), 0), ("/a".to_owned(), 1), ("/a/b/".to_owned(), 2)]);
        let route = |path| router.route(path).map(|(_, v)| *v);
        assert_eq!(route("/"), Some(0));
        assert_eq!(route("/x"), Some(0));
        assert_eq!(route("/a"), Some(1));
        assert_eq!(route("/a/"), Some(1));
        assert_eq!(route("/ab"), Some(0));
        assert_eq!(route("/a/b"), Some(2));
        assert_eq!(route("/a/b/c"), Some(2));
        assert_eq!(route("*"), None);
    }

    #[test]
    fn paths_are_routed_as_a_web_server_in_front_sees_them() {
        for (raw, normal) in [
            ("/a/b", "/a/b"),
            ("/admin/../x", "/x"),
            ("/admin/%2e%2E/x", "/x"),
            ("/admin//..", "/"),
            ("//admin", "/admin"),
            ("/%61dmin/./x/", "/admin/x/"),
            ("/a/%2F/%zz/%", "/a/%2F/%zz/%"),
            ("/../..", "/"),
            ("/a/b/.", "/a/b/"),
            ("/caf\u{e9}/%7e", "/caf\u{e9}/~"),
            ("*", "*"),
        ] {
            assert_eq!(normalize(raw), normal, "{raw}");
        }
        let router = Router::new([("/".to_owned(), 0), ("/admin".to_owned(), 1)]);
        assert_eq!(router.route("/admin/../x").map(|(_, v)| *v), Some(0));
        assert_eq!(router.route("/x/../%61dmin").map(|(_, v)| *v), Some(1));
    }

    #[test]
    fn no_catch_all_means_no_match() {
        let router = Router::new([("/hello".to_owned(), ())]);
        assert!(router.route("/hello").is_some());
        assert!(router.route("/helloworld").is_none());
        assert!(router.route("/").is_none());
    }
}
