//! Enums named by strings: configuration values such as a membership mode or a sync mode,
//! written once with [`string_enum!`](crate::string_enum) and read the same way from a
//! command line ([`FromStr`](std::str::FromStr)), a config file or a message (serde), and
//! printed back ([`Display`](std::fmt::Display)).

/// The serde the macro's expansion uses, so that callers need not name it.
#[doc(hidden)]
pub use serde as __serde;

/// Declares a fieldless enum whose values are named by strings, and derives from the names,
/// written once:
///
/// - [`Display`](std::fmt::Display): the name;
/// - [`FromStr`](std::str::FromStr): the name back, and for any other string the caller's
///   error, built by calling the given constructor with the string;
/// - serde's `Serialize` and `Deserialize`, as the name (a string in every format; an unknown
///   string is serde's "unknown variant" error listing the names).
///
/// It also gives the enum `NAMES` (every name, in declaration order), `name(&self)` and
/// `expected()`, the names as an English list ("a, b or c") for error messages.
///
/// Attributes (docs, `#[derive]`s other than serde's, `#[non_exhaustive]`) and variant
/// attributes (docs, `#[default]`) pass through. The error type follows the enum's name, the
/// constructor follows `=` (a tuple variant or a function taking the unknown `String`):
///
/// ```
/// #[derive(Debug, PartialEq, Eq)]
/// pub struct UnknownColour(String);
///
/// impl std::fmt::Display for UnknownColour {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "unknown colour {:?} (expected {})", self.0, Colour::expected())
///     }
/// }
///
/// rasp_runtime::string_enum! {
///     /// A colour.
///     #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
///     pub enum Colour: UnknownColour = UnknownColour {
///         /// The default.
///         #[default]
///         Red = "red",
///         /// Another.
///         SkyBlue = "sky-blue",
///     }
/// }
///
/// assert_eq!(Colour::SkyBlue.to_string(), "sky-blue");
/// assert_eq!("red".parse::<Colour>(), Ok(Colour::Red));
/// let err = "green".parse::<Colour>().unwrap_err();
/// assert_eq!(err.to_string(), r#"unknown colour "green" (expected red or sky-blue)"#);
/// assert_eq!(Colour::NAMES, ["red", "sky-blue"]);
/// ```
///
/// With a `thiserror` enum, the message can take the list from the enum:
/// `#[error("unknown colour {0:?} (expected {expected})", expected = Colour::expected())]`.
#[macro_export]
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident : $err:ty = $unknown:path {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $text:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $(
                $(#[$vmeta])*
                $variant,
            )+
        }

        impl $name {
            /// Every name, in declaration order.
            $vis const NAMES: &'static [&'static str] = &[$($text),+];

            /// This value's name.
            $vis fn name(&self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The names as an English list, for error messages: "a, b or c".
            $vis fn expected() -> ::std::string::String {
                match Self::NAMES.split_last() {
                    Some((last, [])) => ::std::string::String::from(*last),
                    Some((last, rest)) => ::std::format!("{} or {}", rest.join(", "), last),
                    None => ::std::string::String::new(),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $err;
            fn from_str(s: &str) -> ::std::result::Result<Self, $err> {
                match s {
                    $($text => ::std::result::Result::Ok($name::$variant),)+
                    other => ::std::result::Result::Err($unknown(other.to_string())),
                }
            }
        }

        impl $crate::names::__serde::Serialize for $name {
            fn serialize<S: $crate::names::__serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }

        impl<'de> $crate::names::__serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::names::__serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::std::result::Result<Self, D::Error> {
                struct Visitor;
                impl $crate::names::__serde::de::Visitor<'_> for Visitor {
                    type Value = $name;
                    fn expecting(
                        &self,
                        f: &mut ::std::fmt::Formatter<'_>,
                    ) -> ::std::fmt::Result {
                        ::std::write!(f, "one of {}", $name::expected())
                    }
                    fn visit_str<E: $crate::names::__serde::de::Error>(
                        self,
                        s: &str,
                    ) -> ::std::result::Result<$name, E> {
                        match s {
                            $($text => ::std::result::Result::Ok($name::$variant),)+
                            other => ::std::result::Result::Err(E::unknown_variant(
                                other,
                                $name::NAMES,
                            )),
                        }
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[derive(Debug, PartialEq, Eq, thiserror::Error)]
    #[error("unknown flavour {0:?} (expected {expected})", expected = Flavour::expected())]
    struct UnknownFlavour(String);

    crate::string_enum! {
        /// A test enum.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        enum Flavour: UnknownFlavour = UnknownFlavour {
            /// One.
            #[default]
            Plain = "plain",
            /// Two.
            SaltedCaramel = "salted-caramel",
            /// Three.
            Mint = "mint",
        }
    }

    crate::string_enum! {
        #[derive(Debug, PartialEq, Eq)]
        enum Single: UnknownFlavour = UnknownFlavour {
            Only = "only",
        }
    }

    #[test]
    fn names_parse_print_and_serde() {
        assert_eq!(Flavour::default(), Flavour::Plain);
        for (v, s) in [
            (Flavour::Plain, "plain"),
            (Flavour::SaltedCaramel, "salted-caramel"),
            (Flavour::Mint, "mint"),
        ] {
            assert_eq!(v.to_string(), s);
            assert_eq!(s.parse::<Flavour>(), Ok(v));
            let packed = rmp_serde::to_vec(&v).unwrap();
            assert_eq!(packed, rmp_serde::to_vec(s).unwrap());
            assert_eq!(rmp_serde::from_slice::<Flavour>(&packed).unwrap(), v);
        }
        assert_eq!(Flavour::NAMES, ["plain", "salted-caramel", "mint"]);
        assert_eq!(
            "vanilla".parse::<Flavour>().unwrap_err().to_string(),
            r#"unknown flavour "vanilla" (expected plain, salted-caramel or mint)"#
        );
        let err =
            rmp_serde::from_slice::<Flavour>(&rmp_serde::to_vec("vanilla").unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown variant `vanilla`, expected one of `plain`"),
            "{err}"
        );
        assert_eq!(Single::expected(), "only");
        assert_eq!("only".parse::<Single>(), Ok(Single::Only));
    }
}
