//! `text_enum!`: a fieldless enum with one stable text per variant, the form every enum that is
//! stored or written to the audit trail takes.
//!
//! The macro takes everything it uses as input and names every path in full, so it works the
//! same wherever it is expanded.

/// Declares a `#[non_exhaustive]` fieldless enum deriving `Debug, Clone, Copy, PartialEq, Eq,
/// Hash`, with `ALL` (every value in declaration order), `as_str` (the stable text), `parse`
/// (its inverse, `None` for unknown text) and `Display` (the text). Attributes before the name
/// (docs, further derives, `serde` settings) go onto the enum.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [Self; [$($text),*].len()] = [$(Self::$variant,)*];

            /// The stable text stored for this value.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            /// Parses the stored text; `None` for text this version does not know.
            #[must_use]
            pub fn parse(text: &str) -> ::core::option::Option<Self> {
                match text {
                    $($text => ::core::option::Option::Some(Self::$variant),)*
                    _ => ::core::option::Option::None,
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;
