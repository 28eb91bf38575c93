//! Custom headers ⇄ extFields (`makeCustomHeaderToNet` / `decodeCommandCustomHeader`,
//! protocol.md §1.7). Values are strings on the wire; decoding parses them as Java does, and a
//! missing required (`@CFNotNull`) field is an error.

use crate::Error;
use crate::command::ExtFields;

/// Java's `Boolean.parseBoolean` (any case of `"true"`), plus `"1"` as true (what C++ and
/// JavaScript clients send, protocol.md §12).
pub fn parse_bool(v: &str) -> bool {
    v.eq_ignore_ascii_case("true") || v == "1"
}

/// A value that travels as an extFields string.
pub trait ExtValue: Sized {
    /// Parse the wire string; `None` if it does not parse.
    fn parse_ext(v: &str) -> Option<Self>;
    /// The wire string (`toString()`).
    fn to_ext(&self) -> String;
}

impl ExtValue for String {
    fn parse_ext(v: &str) -> Option<Self> {
        Some(v.to_owned())
    }
    fn to_ext(&self) -> String {
        self.clone()
    }
}

impl ExtValue for bool {
    fn parse_ext(v: &str) -> Option<Self> {
        Some(parse_bool(v))
    }
    fn to_ext(&self) -> String {
        self.to_string()
    }
}

macro_rules! ext_int {
    ($($t:ty),*) => {$(
        impl ExtValue for $t {
            fn parse_ext(v: &str) -> Option<Self> {
                v.trim().parse().ok()
            }
            fn to_ext(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
ext_int!(i32, i64, u32, u64);

/// A typed custom header.
pub trait CommandHeader: Sized {
    /// The extFields a Java peer would write for it.
    fn to_ext(&self) -> ExtFields;
    /// Decode from extFields; extra keys are ignored.
    fn from_ext(ext: &ExtFields) -> Result<Self, Error>;
}

/// A required field: missing → [`Error::MissingField`], unparseable → [`Error::InvalidField`].
pub fn required<T: ExtValue>(ext: &ExtFields, key: &'static str) -> Result<T, Error> {
    let v = ext.get(key).ok_or(Error::MissingField(key))?;
    T::parse_ext(v).ok_or_else(|| Error::InvalidField {
        field: key,
        value: v.to_owned(),
    })
}

/// An optional field: missing or unparseable → `None` (Java logs and skips a bad value).
pub fn optional<T: ExtValue>(ext: &ExtFields, key: &str) -> Option<T> {
    ext.get(key).and_then(T::parse_ext)
}

/// Define a header struct and its [`CommandHeader`] impl. Required fields (`@CFNotNull`) must be
/// present; defaulted fields (Java primitives) are always written and default when missing;
/// optional fields (nullable) are written when set.
macro_rules! header {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$rmeta:meta])* $rfield:ident : $rty:ty = $rkey:literal, )*
        } defaulted {
            $( $(#[$dmeta:meta])* $dfield:ident : $dty:ty = $dkey:literal, )*
        } optional {
            $( $(#[$ometa:meta])* $ofield:ident : $oty:ty = $okey:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$rmeta])* pub $rfield: $rty, )*
            $( $(#[$dmeta])* pub $dfield: $dty, )*
            $( $(#[$ometa])* pub $ofield: Option<$oty>, )*
        }

        impl $crate::ext::CommandHeader for $name {
            fn to_ext(&self) -> $crate::command::ExtFields {
                #[allow(unused_mut)]
                let mut ext = $crate::command::ExtFields::new();
                $( ext.insert($rkey, $crate::ext::ExtValue::to_ext(&self.$rfield)); )*
                $( ext.insert($dkey, $crate::ext::ExtValue::to_ext(&self.$dfield)); )*
                $(
                    if let Some(v) = &self.$ofield {
                        ext.insert($okey, $crate::ext::ExtValue::to_ext(v));
                    }
                )*
                ext
            }

            #[allow(unused_variables)]
            fn from_ext(ext: &$crate::command::ExtFields) -> Result<Self, $crate::Error> {
                Ok($name {
                    $( $rfield: $crate::ext::required(ext, $rkey)?, )*
                    $( $dfield: $crate::ext::optional(ext, $dkey).unwrap_or_default(), )*
                    $( $ofield: $crate::ext::optional(ext, $okey), )*
                })
            }
        }
    };
}
pub(crate) use header;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_parse_as_java_and_friends() {
        for t in ["true", "TRUE", "True", "1"] {
            assert!(parse_bool(t), "{t}");
        }
        for f in ["false", "0", "", "yes", "2"] {
            assert!(!parse_bool(f), "{f}");
        }
    }

    #[test]
    fn required_and_optional_fields() {
        let mut ext = ExtFields::new();
        ext.insert("n", " 42");
        ext.insert("bad", "x");
        assert_eq!(required::<i32>(&ext, "n").unwrap(), 42);
        assert!(matches!(
            required::<i32>(&ext, "missing"),
            Err(Error::MissingField("missing"))
        ));
        assert!(matches!(
            required::<i64>(&ext, "bad"),
            Err(Error::InvalidField { .. })
        ));
        assert_eq!(optional::<i64>(&ext, "bad"), None);
        assert_eq!(optional::<String>(&ext, "bad").as_deref(), Some("x"));
    }
}
