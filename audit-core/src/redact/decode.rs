//! Taking layers of encoding off a string before it is scanned: `%XX` escapes and JSON
//! string escapes, each layer at a time, at most [`MAX_DECODE_ROUNDS`] layers.

/// How many layers of encoding are taken off a string when looking for secrets.
pub(crate) const MAX_DECODE_ROUNDS: usize = 4;

/// Takes one layer of encoding off: `%XX` escapes, then JSON string escapes (`\\"`,
/// `\\\\`, `\\uXXXX`, …), so that a secret inside JSON text held in a string, or encoded
/// twice, shows. `None` when there are neither.
pub(crate) fn decode_once(s: &str) -> Option<String> {
    let percent = percent_decode(s);
    let text = percent.as_deref().unwrap_or(s);
    match json_unescape(text) {
        Some(u) => Some(u),
        None => percent,
    }
}

/// Decodes JSON string escapes (`\\uXXXX` for BMP characters; a lone surrogate or an
/// unknown escape stays as it was); `None` when there are none.
fn json_unescape(s: &str) -> Option<String> {
    memchr::memchr(b'\\', s.as_bytes())?;
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut changed = false;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let simple = match after.as_bytes().first() {
            Some(b'"') => Some('"'),
            Some(b'\\') => Some('\\'),
            Some(b'/') => Some('/'),
            Some(b'n') => Some('\n'),
            Some(b't') => Some('\t'),
            Some(b'r') => Some('\r'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            rest = &after[1..];
            changed = true;
            continue;
        }
        let unicode = after
            .strip_prefix('u')
            .and_then(|h| h.get(..4))
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match unicode {
            Some(c) => {
                out.push(c);
                rest = &after[5..];
                changed = true;
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Decodes `%XX` escapes (and nothing else); `None` when there are none.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let first = memchr::memchr(b'%', b)?;
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..first]);
    let mut changed = false;
    let mut i = first;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            changed = true;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    changed.then(|| String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_layers() {
        assert_eq!(
            decode_once("postgres%253A%252F%252Fapp").as_deref(),
            Some("postgres%3A%2F%2Fapp")
        );
        assert_eq!(decode_once(r"\u0070ass").as_deref(), Some("pass"));
        assert_eq!(
            decode_once(r#"{\"k\": \"v\\\\\"}"#).as_deref(),
            Some(r#"{"k": "v\\"}"#)
        );
        assert_eq!(decode_once(r"\uZZZZ \q"), None);
        assert_eq!(decode_once("plain"), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%zz").as_deref(), Some("a b%zz"));
        assert_eq!(percent_decode("plain"), None);
    }
}
