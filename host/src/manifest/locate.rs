//! Locating a manifest error in the text: a byte offset (from a TOML span) becomes a 1-based
//! line and column, and the `key = value` line at that offset becomes the dotted name of the
//! field, with the index of each array table it sits in (`route[2].preopen[1].writable`).
//!
//! TOML's own errors carry a span but not the field's path, so the path is read back from the
//! table headers above the offset.

/// Turns a byte offset into a 1-based (line, column).
pub(super) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, column)
}

/// The `key` of the `key = value` line at `offset`, prefixed with the table it is in, for
/// naming the field of a TOML error.
pub(super) fn field_at(source: &str, offset: usize) -> Option<String> {
    let before = &source[..offset.min(source.len())];
    let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
    let line = source[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(key, _)| key.trim())
        .filter(|key| !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))?;
    let lines: Vec<&str> = before[..line_start].lines().map(str::trim).collect();
    let table = lines.iter().rev().find(|l| l.starts_with('[')).map(|header| table_name(&lines, header)).unwrap_or_default();
    Some(format!("{table}{key}"))
}

/// The field prefix of the table that `header` (the last header in `lines`) opens: `server.`,
/// `route[2].` for the second `[[route]]`, `route[2].preopen[1].` for the first
/// `[[route.preopen]]` under it.
fn table_name(lines: &[&str], header: &str) -> String {
    let array = header.starts_with("[[");
    let segments: Vec<&str> = header.trim_matches(|c| c == '[' || c == ']').split('.').map(str::trim).collect();
    let mut name = String::new();
    // Each array table's index counts its headers since its parent's header.
    let mut region = lines;
    for (i, segment) in segments.iter().enumerate() {
        name.push_str(segment);
        if array || i + 1 < segments.len() {
            let array_header = format!("[[{}]]", segments[..=i].join("."));
            if let Some(last) = region.iter().rposition(|l| *l == array_header) {
                let count = region.iter().filter(|l| **l == array_header).count();
                name.push_str(&format!("[{count}]"));
                region = &region[last + 1..];
            }
        }
        name.push('.');
    }
    name
}
