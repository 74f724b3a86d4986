//! The event type of a request no rule matched, from its method and its route.
//!
//! With a route template (axum's `MatchedPath`), only the template's literal segments name
//! the event: a path parameter's value cannot turn `GET /v1/indexes/{name}` into an
//! authentication event by being `login`, nor make one event type per tenant in
//! `/{tenant}/items`. The template decides the event type, the target type and which
//! segment of the path holds the target id; that shape is worked out once per route and
//! method and kept (per thread: the audit worker's), so each request only picks its id out of
//! the path.
//!
//! Without a template (no route matched, an axum fallback, plain hyper or tonic without a
//! rule) nothing is derived from the path: every segment of it is the client's choice, and a
//! client must not pick the event type, grow the set of event types, or forge an
//! authentication event. Such a request is recorded as [`UNMATCHED`], its path kept only in
//! `http.path`.

use arrayvec::ArrayString;
use audit_core::Text;
use http::Method;

use super::pattern;

/// A request's default classification.
#[derive(Debug, Clone)]
pub(super) struct Defaulted {
    pub(super) event_type: Text,
    /// The resource acted on: its type and id.
    pub(super) target: Option<(Text, Option<Text>)>,
    /// The resource the target belongs to (`/indexes/{name}/vectors/{id}`: the index).
    pub(super) parent: Option<(Text, Option<Text>)>,
    /// An authentication route: the event type takes the outcome as its last segment.
    pub(super) auth: bool,
}

impl Defaulted {
    fn unmatched() -> Defaulted {
        Defaulted {
            event_type: Text::from_static(UNMATCHED),
            target: None,
            parent: None,
            auth: false,
        }
    }
}

/// The event type of a request that matched no route template and no rule.
pub const UNMATCHED: &str = "data.request.unmatched";

/// The default classification of a request to `path` (matched as `template`, when known).
pub(super) fn default_event_type(method: &Method, path: &str, template: Option<&str>) -> Defaulted {
    let Some(template) = template else {
        return Defaulted::unmatched();
    };
    let shape = shape(method, template);
    let resolve = |(kind, at): (Text, Option<usize>)| {
        let id = at.and_then(|at| pattern::segments(path).nth(at).map(Text::new));
        (kind, id)
    };
    Defaulted {
        event_type: shape.event_type,
        target: shape.target.map(resolve),
        parent: shape.parent.map(resolve),
        auth: shape.auth,
    }
}

/// What a route says of its requests.
#[derive(Debug, Clone)]
struct Shape {
    event_type: Text,
    /// The target type, and the index of the path segment holding the target id (the
    /// capture after the resource's literal, when there is one).
    target: Option<(Text, Option<usize>)>,
    /// The parent resource's type and id segment, for a nested resource.
    parent: Option<(Text, Option<usize>)>,
    /// An authentication route: the event type takes the outcome as its last segment.
    auth: bool,
}

/// The shape of `template` for `method`, worked out from its literal segments.
fn shape(method: &Method, template: &str) -> Shape {
    let literals = pattern::segments(template)
        .enumerate()
        .filter(|(_, s)| pattern::capture(s).is_none());
    shape_of(method, literals)
}

/// The shape named by `segments` (with their index in the path). The last auth-like segment
/// is the most specific (`/oauth/token` → `token`) and names an authentication route; else
/// the last segment that is not a version (`/v1`, `/api`) is the resource, the path segment
/// after it (when that is not another literal) the target id, and the resource before it
/// the parent: `/v1/indexes/{name}/vectors/{id}` names the vector, in index `{name}`. Builds
/// its strings on the stack: the short ones it makes (`data.index.update`, `index`) are then
/// held inline by [`Text`], without a heap block.
fn shape_of<'a>(method: &Method, segments: impl Iterator<Item = (usize, &'a str)>) -> Shape {
    let mut auth = None;
    let mut literals: Vec<(usize, &str)> = Vec::new();
    for (i, segment) in segments {
        if let Some(word) = auth_word(segment) {
            auth = Some(word);
        }
        if !is_version(segment) {
            literals.push((i, segment));
        }
    }
    if let Some(word) = auth {
        return Shape {
            event_type: concat(&["auth.", word]),
            target: None,
            parent: None,
            auth: true,
        };
    }
    let verb = verb(method);
    // The segment after a resource holds its id unless it is the next literal.
    let id_at = |k: usize| {
        let (i, _) = literals[k];
        let next_is_literal = literals.get(k + 1).is_some_and(|(j, _)| *j == i + 1);
        (!next_is_literal).then_some(i + 1)
    };
    let Some(last) = literals.len().checked_sub(1) else {
        return Shape {
            event_type: concat(&["data.root.", verb]),
            target: None,
            parent: None,
            auth: false,
        };
    };
    let name = |seg: &str| {
        let mut segment = Segment::new();
        event_segment(seg, &mut segment);
        singular(&mut segment);
        segment
    };
    let resource = name(literals[last].1);
    let parent = last
        .checked_sub(1)
        .map(|k| (Text::new(&name(literals[k].1)), id_at(k)));
    Shape {
        event_type: concat(&["data.", &resource, ".", verb]),
        target: Some((Text::new(&resource), id_at(last))),
        parent,
        auth: false,
    }
}

/// The action a method stands for.
fn verb(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "read",
        Method::POST => "create",
        Method::PUT | Method::PATCH => "update",
        Method::DELETE => "delete",
        _ => "access",
    }
}

pub(super) const AUTH_WORDS: &[&str] = &[
    "login", "signin", "logout", "signout", "token", "oauth", "mfa", "password", "session",
];

/// An event-type segment made from a path segment: at most 41 bytes.
type Segment = ArrayString<48>;

/// The parts joined, built on the stack (an event type is at most 128 bytes).
pub(super) fn concat(parts: &[&str]) -> Text {
    let mut buf = ArrayString::<{ audit_core::EventType::MAX_LEN }>::new();
    for part in parts {
        if buf.try_push_str(part).is_err() {
            return Text::from(parts.concat());
        }
    }
    Text::new(&buf)
}

/// The authentication word a path segment names, in either number (`tokens` → `token`).
/// Most segments are turned away by their length or first letter before any comparison:
/// this runs for every segment of every request no rule matched.
fn auth_word(segment: &str) -> Option<&'static str> {
    if !(3..=9).contains(&segment.len())
        || !matches!(
            segment.as_bytes()[0].to_ascii_lowercase(),
            b'l' | b's' | b't' | b'o' | b'm' | b'p'
        )
    {
        return None;
    }
    let singular = segment.strip_suffix(['s', 'S']).unwrap_or(segment);
    AUTH_WORDS
        .iter()
        .find(|w| segment.eq_ignore_ascii_case(w) || singular.eq_ignore_ascii_case(w))
        .copied()
}

fn is_version(s: &str) -> bool {
    s.eq_ignore_ascii_case("api")
        || (s.len() >= 2
            && s.as_bytes()[0].eq_ignore_ascii_case(&b'v')
            && s[1..].bytes().all(|b| b.is_ascii_digit()))
}

/// A path segment as an event-type segment: lowercase, `[a-z0-9_]`, starting with a letter,
/// at most 40 bytes (41 with the `r` put before a segment that starts otherwise).
fn event_segment(s: &str, out: &mut Segment) {
    out.clear();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.push('r');
    }
    for b in s.bytes() {
        if out.len() == 40 {
            break;
        }
        out.push(if b.is_ascii_alphanumeric() {
            char::from(b.to_ascii_lowercase())
        } else {
            '_'
        });
    }
}

/// The default classification of a gRPC call no rule matched: its method's leading verb
/// decides the action and the rest of the method names the resource (`DeleteThing` →
/// `data.thing.delete`, `ListThings` → `data.thing.read`); a method without a known verb is
/// `data.<service>.call` (`demo.v1.Greeter/SayHello` → `data.greeter.call`); a method whose
/// words include an authentication word (`Login`, `RefreshToken`) is `auth.<word>` with the
/// outcome appended. A call the server answered `UNIMPLEMENTED` (12) named no method it has:
/// it is [`UNMATCHED`], so a client cannot grow the set of event types.
///
/// | verbs (the method's first word) | action |
/// |---|---|
/// | Get, List, Read, Search, Query, Find, Fetch, Watch, Describe, Lookup, Count, Check, Stream | `read` |
/// | Create, Add, Insert, Register, Upload, Import | `create` |
/// | Update, Set, Patch, Modify, Edit, Replace, Upsert, Put, Rename, Move, Enable, Disable | `update` |
/// | Delete, Remove, Destroy, Purge, Drop, Erase | `delete` |
/// | anything else | `call` |
pub(super) fn grpc_event_type(call: super::Rpc<'_>) -> Defaulted {
    if call.status == Some(12) {
        return Defaulted::unmatched();
    }
    let words = camel_words(call.method);
    if let Some(word) = words.iter().rev().find_map(|w| auth_word(w)) {
        return Defaulted {
            event_type: concat(&["auth.", word]),
            target: None,
            parent: None,
            auth: true,
        };
    }
    let (verb, rest) = match words.split_first() {
        Some((first, rest)) => match grpc_verb(first) {
            Some(verb) => (verb, rest),
            None => ("call", &words[..0]),
        },
        None => ("call", &words[..0]),
    };
    let mut segment = Segment::new();
    if rest.is_empty() {
        let service = call.service.rsplit('.').next().unwrap_or(call.service);
        event_segment(&camel_words(service).join("_"), &mut segment);
    } else {
        event_segment(&rest.join("_"), &mut segment);
    }
    singular(&mut segment);
    Defaulted {
        event_type: concat(&["data.", &segment, ".", verb]),
        target: Some((Text::new(&segment), None)),
        parent: None,
        auth: false,
    }
}

/// The action a gRPC method's first word stands for.
fn grpc_verb(word: &str) -> Option<&'static str> {
    const VERBS: &[(&str, &str)] = &[
        ("get", "read"),
        ("list", "read"),
        ("read", "read"),
        ("search", "read"),
        ("query", "read"),
        ("find", "read"),
        ("fetch", "read"),
        ("watch", "read"),
        ("describe", "read"),
        ("lookup", "read"),
        ("count", "read"),
        ("check", "read"),
        ("stream", "read"),
        ("create", "create"),
        ("add", "create"),
        ("insert", "create"),
        ("register", "create"),
        ("upload", "create"),
        ("import", "create"),
        ("update", "update"),
        ("set", "update"),
        ("patch", "update"),
        ("modify", "update"),
        ("edit", "update"),
        ("replace", "update"),
        ("upsert", "update"),
        ("put", "update"),
        ("rename", "update"),
        ("move", "update"),
        ("enable", "update"),
        ("disable", "update"),
        ("delete", "delete"),
        ("remove", "delete"),
        ("destroy", "delete"),
        ("purge", "delete"),
        ("drop", "delete"),
        ("erase", "delete"),
    ];
    VERBS
        .iter()
        .find(|(v, _)| word.eq_ignore_ascii_case(v))
        .map(|(_, action)| *action)
}

/// `DeleteThingsByID` → `["delete", "things", "by", "id"]`; `say_hello` → `["say", "hello"]`.
fn camel_words(s: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let b = s.as_bytes();
    let mut current = String::new();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' || c == b'.' {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        let boundary = c.is_ascii_uppercase()
            && !current.is_empty()
            && (b[i - 1].is_ascii_lowercase()
                || b[i - 1].is_ascii_digit()
                || b.get(i + 1).is_some_and(u8::is_ascii_lowercase));
        if boundary {
            words.push(std::mem::take(&mut current));
        }
        current.push(char::from(c.to_ascii_lowercase()));
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Naive English singular, in place: `policies` → `policy`, `boxes` → `box`, `keys` → `key`.
fn singular(s: &mut Segment) {
    if s.ends_with("ies") {
        s.truncate(s.len() - 3);
        s.push('y');
    } else if s.ends_with("sses")
        || s.ends_with("xes")
        || s.ends_with("ches")
        || s.ends_with("shes")
    {
        s.truncate(s.len() - 2);
    } else if s.len() > 3 && s.ends_with('s') && !s.ends_with("ss") {
        s.truncate(s.len() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Rpc, Rules};

    #[test]
    fn grpc_methods_name_their_events() {
        let call = |service, method, status| {
            let d = grpc_event_type(Rpc {
                service,
                method,
                status,
            });
            (
                d.event_type.to_string(),
                d.target.map(|(k, _)| k.to_string()),
                d.auth,
            )
        };
        let g = "demo.v1.Greeter";
        assert_eq!(call(g, "DeleteThing", Some(0)).0, "data.thing.delete");
        assert_eq!(call(g, "ListThings", Some(0)).0, "data.thing.read");
        assert_eq!(call(g, "CreateApiKey", Some(7)).0, "data.api_key.create");
        assert_eq!(call(g, "UpdateHTTPRoute", None).0, "data.http_route.update");
        assert_eq!(call(g, "SayHello", Some(0)).0, "data.greeter.call");
        assert_eq!(call(g, "Get", Some(0)).0, "data.greeter.read");
        assert_eq!(call(g, "SayHello", Some(0)).1.as_deref(), Some("greeter"));
        assert_eq!(
            call("auth.v1.Auth", "Login", Some(16)),
            ("auth.login".into(), None, true)
        );
        assert_eq!(call(g, "RefreshToken", Some(0)).0, "auth.token");
        // A method the server does not have names nothing.
        assert_eq!(call(g, "DropAllTables", Some(12)).0, UNMATCHED);
    }

    #[test]
    fn every_auth_word_is_recognised_in_either_number_and_case() {
        for w in AUTH_WORDS {
            let plural = format!("{w}s");
            for s in [
                w.to_string(),
                w.to_ascii_uppercase(),
                plural.clone(),
                plural.to_ascii_uppercase(),
            ] {
                assert_eq!(auth_word(&s), Some(*w), "{s}");
            }
        }
        for s in [
            "",
            "s",
            "log",
            "logins2",
            "tokenizer",
            "vectors",
            "42",
            "sessionss",
        ] {
            assert_eq!(auth_word(s), None, "{s}");
        }
        let rules = Rules::new();
        let c = rules.classify(
            &Method::POST,
            "/v1/Sessions/current/Tokens",
            Some("/v1/Sessions/current/Tokens"),
        );
        assert_eq!(c.event_type(), "auth.token");
    }

    /// The event type and target of a request to `path` matched as `template`.
    fn by_template(
        method: &Method,
        template: &str,
        path: &str,
    ) -> (String, Option<(String, String)>) {
        let c = Rules::new().classify(method, path, Some(template));
        let target = c.target().map(|(k, id)| (k.to_owned(), id.to_owned()));
        (c.event_type().to_owned(), target)
    }

    #[test]
    fn with_a_template_only_its_literal_segments_name_the_event() {
        let target = |k: &str, id: &str| Some((k.to_owned(), id.to_owned()));
        // A parameter's value is not a route: an index named `login` is still an index.
        assert_eq!(
            by_template(&Method::GET, "/v1/indexes/{name}", "/v1/indexes/login"),
            ("data.index.read".to_owned(), target("index", "login"))
        );
        assert_eq!(
            Rules::new()
                .classify(&Method::GET, "/v1/indexes/login", None)
                .event_type(),
            UNMATCHED,
            "without a template the path decides nothing"
        );
        // A leading parameter (a tenant) is not the resource: one event type for all tenants.
        assert_eq!(
            by_template(&Method::PUT, "/{tenant}/items/{id}", "/acme/items/7"),
            ("data.item.update".to_owned(), target("item", "7"))
        );
        // A nested resource: the last one is acted on, its parent goes with it.
        assert_eq!(
            by_template(
                &Method::PUT,
                "/v1/indexes/{name}/vectors/{id}",
                "/v1/indexes/p/vectors/42"
            ),
            ("data.vector.update".to_owned(), target("vector", "42"))
        );
        let d = default_event_type(
            &Method::PUT,
            "/v1/indexes/p/vectors/42",
            Some("/v1/indexes/{name}/vectors/{id}"),
        );
        assert_eq!(d.parent, Some((Text::new("index"), Some(Text::new("p")))));
        // A literal after the resource is the resource; there is then no id to take.
        let d = default_event_type(
            &Method::POST,
            "/v1/indexes/p/vectors",
            Some("/v1/indexes/{name}/vectors"),
        );
        assert_eq!(d.event_type, "data.vector.create");
        assert_eq!(d.target, Some((Text::new("vector"), None)));
        let d = default_event_type(&Method::GET, "/v1/indexes/stats", Some("/v1/indexes/stats"));
        assert_eq!(d.event_type, "data.stat.read");
        assert_eq!(d.target, Some((Text::new("stat"), None)));
        assert_eq!(d.parent, Some((Text::new("index"), None)));
        // Literal auth words still make an authentication route.
        assert_eq!(
            by_template(
                &Method::POST,
                "/auth/{provider}/login",
                "/auth/github/login"
            ),
            ("auth.login".to_owned(), None)
        );
        // Nothing literal: the root, with no target.
        assert_eq!(
            by_template(&Method::GET, "/{*rest}", "/a/b"),
            ("data.root.read".to_owned(), None)
        );
        // A route with no id segment in this request.
        let (t, target) = by_template(&Method::GET, "/v1/indexes", "/v1/indexes");
        assert_eq!((t.as_str(), target), ("data.index.read", None));
    }

    #[test]
    fn shapes_depend_on_the_method() {
        // The same template under two methods: two shapes.
        assert_eq!(
            by_template(&Method::DELETE, "/keys/{id}", "/keys/k1").0,
            "data.key.delete"
        );
        assert_eq!(
            by_template(&Method::GET, "/keys/{id}", "/keys/k1").0,
            "data.key.read"
        );
        for i in 0..4 {
            let template = format!("/resource_{i}s/{{id}}");
            let path = format!("/resource_{i}s/x{i}");
            let (t, target) = by_template(&Method::GET, &template, &path);
            assert_eq!(t, format!("data.resource_{i}.read"));
            assert_eq!(target, Some((format!("resource_{i}"), format!("x{i}"))));
        }
        assert_eq!(
            by_template(&Method::GET, "/keys/{id}", "/keys/k2")
                .1
                .unwrap()
                .1,
            "k2"
        );
    }
}
