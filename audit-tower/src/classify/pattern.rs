//! Route patterns: `/v1/indexes/{name}/vectors/{id}`, with `{param}` captures and a trailing
//! `{*rest}` wildcard, in axum's syntax.

use std::fmt;

use audit_core::Text;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

/// A parsed route pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct RoutePattern {
    /// Shared: a matching request's event carries it as its route without a copy.
    source: Text,
    segments: Vec<Segment>,
}

impl fmt::Debug for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoutePattern({:?})", self.source)
    }
}

/// The non-empty `/`-separated segments of a path. A byte loop: segments are short, and a
/// `memchr` call per segment (as `str::split` makes) costs more than it saves here.
pub(super) fn segments(path: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let b = path.as_bytes();
        while start < b.len() {
            let end = b[start..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(b.len(), |p| start + p);
            let segment = path.get(start..end);
            start = end + 1;
            if let Some(s) = segment.filter(|s| !s.is_empty()) {
                return Some(s);
            }
        }
        None
    })
}

/// The name inside a capture segment (`{name}` → `name`, `{*rest}` → `*rest`), or `None`
/// for a literal segment.
pub(super) fn capture(segment: &str) -> Option<&str> {
    segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'))
}

impl RoutePattern {
    /// Parses a pattern. Segments in braces capture one path segment (`{name}`) or the rest
    /// of the path (`{*rest}`, last only).
    pub fn new(pattern: &str) -> RoutePattern {
        let segments = segments(pattern)
            .map(|s| match capture(s) {
                Some(name) => match name.strip_prefix('*') {
                    Some(rest) => Segment::Rest(rest.to_owned()),
                    None => Segment::Param(name.to_owned()),
                },
                None => Segment::Literal(s.to_owned()),
            })
            .collect();
        RoutePattern {
            source: Text::new(pattern),
            segments,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// What is wrong with the pattern as written, if anything: it must start with `/`; a
    /// capture is a whole segment in braces with a name (`{id}`, `{*rest}` last only), each
    /// name once; `:id` and `*rest` are axum 0.7's syntax, which matches only literally.
    pub(crate) fn problem(&self) -> Option<String> {
        let src = self.source.as_str();
        if !src.starts_with('/') {
            return Some(format!("`{src}` does not start with `/`"));
        }
        let mut names: Vec<&str> = Vec::new();
        let count = self.segments.len();
        for (i, raw) in segments(src).enumerate() {
            let name = match capture(raw) {
                Some(name) => name,
                None if raw.contains(['{', '}']) => {
                    return Some(format!(
                        "`{src}`: the segment `{raw}` has a brace but is not a capture (write                          a whole segment as `{{name}}`)"
                    ));
                }
                None if raw.starts_with(':') || (raw.starts_with('*') && raw.len() > 1) => {
                    return Some(format!(
                        "`{src}`: `{raw}` is the old `:name`/`*name` syntax, which matches                          only that literal text; write `{{{}}}`",
                        raw.trim_start_matches(':')
                    ));
                }
                None => continue,
            };
            let bare = name.strip_prefix('*').unwrap_or(name);
            if bare.is_empty() || bare.contains(['{', '}', '*']) {
                return Some(format!("`{src}`: `{raw}` is not a capture name"));
            }
            if name.starts_with('*') && i + 1 != count {
                return Some(format!("`{src}`: `{raw}` may only be the last segment"));
            }
            if names.contains(&bare) {
                return Some(format!("`{src}`: `{bare}` is captured twice"));
            }
            names.push(bare);
        }
        None
    }

    /// Whether the pattern captures a parameter called `name`.
    pub(crate) fn has_capture(&self, name: &str) -> bool {
        self.segments.iter().any(|s| match s {
            Segment::Param(n) | Segment::Rest(n) => n == name,
            Segment::Literal(_) => false,
        })
    }

    /// Whether the pattern names the same route as `route` (a template in the same syntax):
    /// the same shape, or a literal route this pattern matches.
    pub(crate) fn covers(&self, route: &str) -> bool {
        self.is_template(route) || self.captures(route).is_some()
    }

    /// The pattern as written, shared.
    pub(crate) fn text(&self) -> &Text {
        &self.source
    }

    /// True when `template` (e.g. axum's `MatchedPath`) is this same route; parameter
    /// names may differ.
    pub(crate) fn is_template(&self, template: &str) -> bool {
        let other = RoutePattern::new(template);
        other.segments.len() == self.segments.len()
            && other
                .segments
                .iter()
                .zip(&self.segments)
                .all(|(a, b)| match (a, b) {
                    (Segment::Literal(x), Segment::Literal(y)) => x == y,
                    (Segment::Param(_), Segment::Param(_))
                    | (Segment::Rest(_), Segment::Rest(_)) => true,
                    _ => false,
                })
    }

    /// The captures when `path` matches, `None` otherwise.
    pub(crate) fn captures<'p>(&self, path: &'p str) -> Option<Vec<(&str, &'p str)>> {
        let mut parts = segments(path);
        let mut caps = Vec::new();
        for seg in &self.segments {
            match seg {
                Segment::Rest(name) => {
                    let rest_start = parts.next().map(|first| {
                        let offset = first.as_ptr() as usize - path.as_ptr() as usize;
                        &path[offset..]
                    });
                    caps.push((name.as_str(), rest_start.unwrap_or("")));
                    return Some(caps);
                }
                Segment::Literal(lit) => {
                    if parts.next()? != lit {
                        return None;
                    }
                }
                Segment::Param(name) => caps.push((name.as_str(), parts.next()?)),
            }
        }
        parts.next().is_none().then_some(caps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_what_split_gives_without_the_empty_ones() {
        for path in [
            "",
            "/",
            "//",
            "/a",
            "a",
            "/a/",
            "/a//b/",
            "/v1/indexes/é/x",
            "a/b/c",
        ] {
            let want: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            assert_eq!(segments(path).collect::<Vec<_>>(), want, "{path:?}");
        }
    }

    #[test]
    fn captures_and_templates() {
        let p = RoutePattern::new("/v1/indexes/{name}/vectors/{id}");
        assert_eq!(
            p.captures("/v1/indexes/products/vectors/42"),
            Some(vec![("name", "products"), ("id", "42")])
        );
        assert_eq!(p.captures("/v1/indexes/products/vectors"), None);
        assert_eq!(p.captures("/v1/indexes/products/vectors/42/x"), None);
        assert!(p.is_template("/v1/indexes/{index}/vectors/{vid}"));
        assert!(!p.is_template("/v1/indexes/{index}"));
        assert!(!p.is_template("/v1/indexes/{index}/vectors/latest"));
        let rest = RoutePattern::new("/files/{*path}");
        assert_eq!(
            rest.captures("/files/a/b.txt"),
            Some(vec![("path", "a/b.txt")])
        );
        assert_eq!(RoutePattern::new("/").captures("/"), Some(vec![]));
    }

    #[test]
    fn malformed_patterns_say_what_is_wrong() {
        for good in [
            "/",
            "/v1/indexes/{name}/vectors/{id}",
            "/files/{*path}",
            "/a.b/C",
        ] {
            assert_eq!(RoutePattern::new(good).problem(), None, "{good}");
        }
        for (bad, says) in [
            ("v1/indexes", "does not start with `/`"),
            ("/v1/indexes/{name/vectors", "has a brace"),
            ("/v1/{a}{b}", "not a capture name"),
            ("/v1/{}", "not a capture name"),
            ("/v1/indexes/:name", "old `:name`"),
            ("/files/*path", "old `:name`"),
            ("/files/{*path}/x", "only be the last"),
            ("/v1/{id}/x/{id}", "captured twice"),
        ] {
            let problem = RoutePattern::new(bad).problem().unwrap_or_default();
            assert!(problem.contains(says), "{bad}: {problem}");
        }
    }
}
