//! The pure domain layer: the canonical user and its parsed newtypes, parsing with JSON-path
//! errors, JSON merge patch, provider ids and the link status ordering. No I/O anywhere.

/// Declares a closed string enumeration: serde names, `as_str`, `ALL`, `FromStr`, `Display`.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $s:tt ),+ $(,)?
        }
    ) => {
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $s)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire value.
            pub const fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $s),+
                }
            }

            /// Exact (case-sensitive) lookup of a wire value.
            pub fn from_wire(s: &str) -> Option<Self> {
                match s {
                    $($s => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The allowed wire values joined for error messages: `a, b, c`.
            pub fn allowed() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl $crate::domain::WireEnum for $name {
            fn from_wire(s: &str) -> Option<Self> {
                $name::from_wire(s)
            }
            fn allowed() -> String {
                $name::allowed()
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_wire(s).ok_or_else(|| $crate::domain::ParseEnumError {
                    type_name: stringify!($name),
                    allowed: Self::allowed(),
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod errors;
pub mod events;
pub mod masking;
pub mod merge_patch;
pub mod operator;
pub mod parse;
pub mod provider;
pub mod status;
pub mod user;
pub mod verification;

pub use errors::{codes, FieldError};
pub use merge_patch::{apply_merge_patch, changed_paths};
pub use parse::{parse_create_request, parse_create_request_at, parse_user, parse_user_at};
pub use provider::ProviderId;
pub use status::{summarize, LinkStatus};
pub use user::*;

/// A closed set of string values (implemented by every domain enumeration).
pub trait WireEnum: Sized {
    /// Exact lookup of a wire value.
    fn from_wire(s: &str) -> Option<Self>;
    /// The allowed wire values, comma-separated.
    fn allowed() -> String;
}

/// A string that is not one of an enumeration's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {type_name} value; expected one of: {allowed}")]
pub struct ParseEnumError {
    /// The Rust type that was being parsed.
    pub type_name: &'static str,
    /// The allowed values, comma-separated.
    pub allowed: String,
}
