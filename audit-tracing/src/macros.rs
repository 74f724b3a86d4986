//! The `audit!` macro.

/// Records an audit event with the current request's context.
///
/// ```text
/// audit!(event_type = TYPE [, FIELD = VALUE]* [, "description {}", args…])
/// ```
///
/// - `event_type` comes first: a dotted lowercase type such as `"data.vector.delete"`.
/// - Fields: `target.kind`, `target.id`, `target.name`, `actor.id`, `actor.kind`,
///   `actor.email`, `actor.role`, `actor.client_id`, `context.organization_id`, `details.KEY`,
///   or a bare `KEY` (a detail too). A detail key is written in the event's camelCase, like
///   the library's own (`details.tokens_used` → `tokensUsed`). Values are any `Serialize`
///   expression; `%value` records its `Display`, `?value` its `Debug`, as in `tracing`.
/// - `result = Outcome::…` and `severity = Severity::…` are optional (no result: unset;
///   severity: info).
/// - A trailing format string becomes the description.
///
/// The request id, trace and span ids, actor, tenant and session come from the request the
/// `AuditLayer` is serving, or from the nearest span created inside one (spawned work
/// instrumented with it), so a handler states only what it knows better than the route.
/// Outside any request (a background job) the event has no request context and goes to the
/// [global auditor](crate::set_global_auditor).
///
/// `audit!` does not go through `tracing`'s filters, levels or compile-time
/// `max_level_*`/`release_max_level_*` features: an application's log filter can never drop
/// an audit event. An invalid event type is recorded as `system.audit.invalid_event` naming
/// the call site.
///
/// ```standalone_crate
/// use audit_core::{Auditor, Outcome};
/// use audit_sinks::MemorySink;
/// use audit_tracing::audit;
///
/// let memory = MemorySink::new(10);
/// let auditor = Auditor::builder().sink(memory.clone()).build()?;
/// audit_tracing::set_global_auditor(auditor.clone());
///
/// let (id, n) = ("vec-42", 3);
/// audit!(
///     event_type = "data.vector.delete",
///     target.kind = "vector",
///     target.id = %id,
///     details.count = n,
///     result = Outcome::Success,
///     "Deleted vector {id}"
/// );
/// auditor.shutdown_blocking(std::time::Duration::from_secs(5));
/// let e = &memory.events()[0];
/// assert_eq!(e.target.as_ref().unwrap().id.as_deref(), Some("vec-42"));
/// assert_eq!(e.details["count"], 3);
/// assert_eq!(e.description.as_deref(), Some("Deleted vector vec-42"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! audit {
    (event_type = $et:expr $(,)?) => {{
        $crate::__private::Emit::new($et, ::core::file!(), ::core::line!()).finish();
    }};
    (event_type = $et:expr, $($rest:tt)+) => {{
        let mut __audit_emit = $crate::__private::Emit::new($et, ::core::file!(), ::core::line!());
        $crate::__audit_fields!(__audit_emit; $($rest)+);
        __audit_emit.finish();
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __audit_fields {
    ($e:ident; ) => {};
    ($e:ident; $fmt:literal $(, $arg:expr)* $(,)?) => {
        $e.description(::std::format!($fmt $(, $arg)*));
    };
    ($e:ident; result = $v:expr $(, $($rest:tt)*)?) => {
        $e.result($v);
        $crate::__audit_fields!($e; $($($rest)*)?);
    };
    ($e:ident; severity = $v:expr $(, $($rest:tt)*)?) => {
        $e.severity($v);
        $crate::__audit_fields!($e; $($($rest)*)?);
    };
    ($e:ident; description = $v:expr $(, $($rest:tt)*)?) => {
        $e.description(::std::string::ToString::to_string(&$v));
        $crate::__audit_fields!($e; $($($rest)*)?);
    };
    ($e:ident; $a:ident . $b:ident = % $v:expr $(, $($rest:tt)*)?) => {
        $e.set(
            ::core::stringify!($a),
            ::core::stringify!($b),
            $crate::__private::Value::String(::std::format!("{}", $v)),
        );
        $crate::__audit_fields!($e; $($($rest)*)?);
    };
    ($e:ident; $a:ident . $b:ident = ? $v:expr $(, $($rest:tt)*)?) => {
        $e.set(
            ::core::stringify!($a),
            ::core::stringify!($b),
            $crate::__private::Value::String(::std::format!("{:?}", $v)),
        );
        $crate::__audit_fields!($e; $($($rest)*)?);
    };
    ($e:ident; $a:ident . $b:ident = $v:expr $(, $($rest:tt)*)?) => {
        $e.set(
            ::core::stringify!($a),
            ::core::stringify!($b),
            $crate::__private::to_value(&$v),
        );
        $crate::__audit_fields!($e; $($($rest)*)?);
    };
    ($e:ident; $k:ident = % $v:expr $(, $($rest:tt)*)?) => {
        $e.detail(
            ::core::stringify!($k),
            $crate::__private::Value::String(::std::format!("{}", $v)),
        );
        $crate::__audit_fields!($e; $($($rest)*)?);
    };
    ($e:ident; $k:ident = ? $v:expr $(, $($rest:tt)*)?) => {
        $e.detail(
            ::core::stringify!($k),
            $crate::__private::Value::String(::std::format!("{:?}", $v)),
        );
        $crate::__audit_fields!($e; $($($rest)*)?);
    };
    ($e:ident; $k:ident = $v:expr $(, $($rest:tt)*)?) => {
        $e.detail(::core::stringify!($k), $crate::__private::to_value(&$v));
        $crate::__audit_fields!($e; $($($rest)*)?);
    };
}
