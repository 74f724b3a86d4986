//! [`Text`]: the string type of the event's fields.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

/// An immutable string that is cheap to make when short and cheap to clone always.
///
/// Most of an event's strings are short (`PUT`, `user`, `data.index.update`, a span id, an IP
/// address, a service name): up to 23 bytes are held inline, without a heap block, so an
/// event the Tower layer builds allocates a handful of blocks instead of a dozen and a half.
/// Longer strings are shared (`Arc<str>`): a route template or a service name held by the
/// layer is cloned into each event by a reference count, not a copy. A `&'static str` of any
/// length is held without allocating through [`Text::from_static`].
///
/// It reads like a `&str` (it derefs to one), compares with `str`, `&str` and `String`, and
/// serialises as a plain JSON string.
///
/// ```
/// use audit_core::Text;
///
/// let method = Text::from("PUT");
/// assert_eq!(method, "PUT");
/// assert_eq!(method.len(), 3);
/// let owned: String = method.clone().into();
/// assert_eq!(owned, "PUT");
/// assert_eq!(serde_json::to_string(&method).unwrap(), r#""PUT""#);
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text(SmolStr);

impl Text {
    /// The longest string held without a heap block, in bytes.
    pub const INLINE_LEN: usize = 23;

    /// A copy of `s` (inline when short, else one shared block).
    pub fn new(s: &str) -> Text {
        Text(SmolStr::new(s))
    }

    /// A static string, held by reference whatever its length.
    pub const fn from_static(s: &'static str) -> Text {
        Text(SmolStr::new_static(s))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::new(s)
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Text {
        Text::new(s)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(SmolStr::from(s))
    }
}

impl From<Box<str>> for Text {
    fn from(s: Box<str>) -> Text {
        Text(SmolStr::from(s))
    }
}

impl From<Cow<'_, str>> for Text {
    fn from(s: Cow<'_, str>) -> Text {
        Text::new(&s)
    }
}

impl From<&Text> for Text {
    fn from(s: &Text) -> Text {
        s.clone()
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.as_str().to_owned()
    }
}

macro_rules! eq_str {
    ($($other:ty),*) => {
        $(
            impl PartialEq<$other> for Text {
                fn eq(&self, other: &$other) -> bool {
                    self.as_str() == AsRef::<str>::as_ref(other)
                }
            }

            impl PartialEq<Text> for $other {
                fn eq(&self, other: &Text) -> bool {
                    AsRef::<str>::as_ref(self) == other.as_str()
                }
            }
        )*
    };
}

eq_str!(str, &str, String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_inline_and_long_ones_shared() {
        let short = "x".repeat(Text::INLINE_LEN);
        assert!(!Text::new(&short).0.is_heap_allocated());
        let long = Text::new(&"x".repeat(Text::INLINE_LEN + 1));
        assert!(long.0.is_heap_allocated());
        // A clone shares the block.
        let copy = long.clone();
        assert_eq!(copy.as_ptr(), long.as_ptr());
        let stat = Text::from_static("a static string longer than twenty-three bytes");
        assert!(!stat.0.is_heap_allocated());
    }

    #[test]
    fn compares_and_converts_like_a_string() {
        let t = Text::from(String::from("user"));
        assert_eq!(t, "user");
        assert_eq!("user", t);
        assert_eq!(t, String::from("user"));
        assert_eq!(String::from(t.clone()), "user");
        assert_eq!(format!("{t} {t:?}"), r#"user "user""#);
        assert_eq!(Some(t).as_deref(), Some("user"));
    }

    #[test]
    fn serde_is_a_plain_string() {
        let t: Text = serde_json::from_str(r#""a\"b""#).unwrap();
        assert_eq!(t, "a\"b");
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""a\"b""#);
    }
}
