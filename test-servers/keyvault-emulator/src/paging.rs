//! List paging: `maxresults` (1..=25, default 25) and an opaque `$skiptoken` cursor.
//!
//! The token carries the key of the last item served, so a page stays correct when
//! secrets are added or removed between pages. Keys sort lexicographically.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ApiError;

/// Most items per page, and the default.
pub const MAX_RESULTS: usize = 25;

const TOKEN_PREFIX: &str = "kvemu1:";

/// Parses `maxresults`: absent → 25; otherwise it must be 1..=25.
pub fn max_results(raw: Option<&str>) -> Result<usize, ApiError> {
    let Some(raw) = raw else { return Ok(MAX_RESULTS) };
    match raw.parse::<usize>() {
        Ok(n) if (1..=MAX_RESULTS).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_parameter(format!(
            "Invalid maxresults '{raw}': it must be between 1 and {MAX_RESULTS}."
        ))),
    }
}

/// Encodes the cursor "after this key" as an opaque, URL-safe token.
pub fn encode_token(after: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{after}"))
}

/// Decodes a token made by [`encode_token`].
pub fn decode_token(token: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(TOKEN_PREFIX).map(str::to_owned))
        .ok_or_else(|| ApiError::bad_parameter("The $skiptoken is not valid."))
}

/// One page: the items and, when more remain, the token for the next page.
#[derive(Debug)]
pub struct Page<T> {
    /// Items of this page.
    pub items: Vec<T>,
    /// Token for the next page.
    pub next: Option<String>,
}

/// Cuts a page from `items` (sorted by key) after the cursor `after`.
///
/// With `empty` set the page is empty and the next token repeats the cursor, as the real
/// service sometimes answers; clients must keep following `nextLink`.
pub fn page<T>(items: Vec<(String, T)>, after: Option<&str>, max: usize, empty: bool) -> Page<T> {
    if empty {
        return Page {
            items: Vec::new(),
            next: Some(encode_token(after.unwrap_or(""))),
        };
    }
    let mut rest = items
        .into_iter()
        .filter(|(key, _)| after.is_none_or(|a| key.as_str() > a))
        .peekable();
    let mut out = Vec::new();
    let mut last = None;
    while out.len() < max {
        let Some((key, item)) = rest.next() else { break };
        out.push(item);
        last = Some(key);
    }
    let next = match (rest.peek(), last) {
        (Some(_), Some(last)) => Some(encode_token(&last)),
        _ => None,
    };
    Page { items: out, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<(String, usize)> {
        (0..n).map(|i| (format!("s{i:03}"), i)).collect()
    }

    /// Follows tokens to the end, as a client does.
    fn walk(n: usize, max: usize) -> (Vec<usize>, usize) {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = page(items(n), after.as_deref(), max, false);
            pages += 1;
            seen.extend(page.items);
            match page.next {
                Some(token) => after = Some(decode_token(&token).unwrap()),
                None => return (seen, pages),
            }
        }
    }

    #[test]
    fn max_results_bounds() {
        assert_eq!(max_results(None).unwrap(), 25);
        assert_eq!(max_results(Some("1")).unwrap(), 1);
        assert_eq!(max_results(Some("25")).unwrap(), 25);
        for bad in ["0", "26", "-1", "x", ""] {
            assert_eq!(max_results(Some(bad)).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn token_round_trip_and_is_url_safe() {
        for key in ["", "a", "secret-with-dashes", "00000000000000000042"] {
            let token = encode_token(key);
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(decode_token(&token).unwrap(), key);
        }
        assert_eq!(decode_token("not a token").unwrap_err().code, "BadParameter");
        assert!(decode_token(&URL_SAFE_NO_PAD.encode("other:x")).is_err());
    }

    #[test]
    fn pages_cover_everything_once() {
        for (n, max, pages) in [(60, 25, 3), (60, 7, 9), (50, 25, 2), (0, 25, 1), (1, 1, 1)] {
            let (seen, got_pages) = walk(n, max);
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n={n} max={max}");
            assert_eq!(got_pages, pages, "n={n} max={max}");
        }
    }

    #[test]
    fn empty_page_keeps_the_cursor() {
        let first = page(items(10), None, 4, false);
        let token = first.next.unwrap();
        let cursor = decode_token(&token).unwrap();
        let empty = page(items(10), Some(&cursor), 4, true);
        assert!(empty.items.is_empty());
        let again = decode_token(&empty.next.unwrap()).unwrap();
        assert_eq!(again, cursor);
        assert_eq!(page(items(10), Some(&again), 4, false).items, vec![4, 5, 6, 7]);
        // An empty page before the first item restarts from the beginning.
        let start = page(items(3), None, 4, true);
        let from = decode_token(&start.next.unwrap()).unwrap();
        assert_eq!(page(items(3), Some(&from), 4, false).items, vec![0, 1, 2]);
    }

    #[test]
    fn cursor_survives_removed_items() {
        let first = page(items(10), None, 3, false);
        let cursor = decode_token(&first.next.unwrap()).unwrap();
        let fewer: Vec<_> = items(10).into_iter().filter(|(_, i)| *i != 3).collect();
        assert_eq!(page(fewer, Some(&cursor), 3, false).items, vec![4, 5, 6]);
    }
}
