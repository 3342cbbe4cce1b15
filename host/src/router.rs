//! Picks a route for a request path: the longest route prefix that matches at a path-segment
//! boundary (`/hello` matches `/hello` and `/hello/x`, not `/helloworld`; `/` matches all).

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

    /// The value of the best route for `path`, with its prefix.
    pub fn route(&self, path: &str) -> Option<(&str, &T)> {
        self.routes.iter().find(|(prefix, _)| matches(prefix, path)).map(|(prefix, value)| (prefix.as_str(), value))
    }

    /// All routes, longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.routes.iter().map(|(prefix, value)| (prefix.as_str(), value))
    }
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
    fn no_catch_all_means_no_match() {
        let router = Router::new([("/hello".to_owned(), ())]);
        assert!(router.route("/hello").is_some());
        assert!(router.route("/helloworld").is_none());
        assert!(router.route("/").is_none());
    }
}
