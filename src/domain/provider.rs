//! Provider identifiers, and the one list that names the providers.

/// **The list of providers**, the one place in the code that names them all: each entry is the
/// provider's module name (its folder `src/providers/<module>/` and its simulator
/// `src/sim/<module>.rs`), its [`ProviderId`] variant, its wire id and its display name.
///
/// `with_providers!(callback)` invokes `callback! { module Variant "id" "Name", … }`, so that the
/// id enum, the provider modules, their dispatch and the simulators are all generated from
/// this list (`docs/adding-a-provider.md`). Adding a provider is one line here.
#[macro_export]
macro_rules! with_providers {
    ($callback:ident) => {
        $callback! {
            kraken Kraken "kraken" "Kraken Embed",
            killb Killb "killb" "KillB",
            carbn Carbn "carbn" "Carbn Connect",
        }
    };
}

macro_rules! declare_provider_id {
    (
        $first_module:ident $first_variant:ident $first_id:tt $first_name:tt,
        $( $module:ident $variant:ident $id:tt $name:tt ),* $(,)?
    ) => {
        string_enum! {
            /// A KYC provider the gateway can onboard users at.
            #[schema(examples($first_id))]
            pub enum ProviderId {
                #[doc = $first_name] $first_variant => $first_id,
                $( #[doc = $name] $variant => $id ),*
            }
        }

        impl ProviderId {
            /// The provider's display name (`Kraken Embed`).
            pub const fn display_name(&self) -> &'static str {
                match self {
                    ProviderId::$first_variant => $first_name,
                    $( ProviderId::$variant => $name ),*
                }
            }

            /// The position in [`ProviderId::ALL`] (dense, for per-provider arrays).
            pub const fn index(&self) -> usize {
                *self as usize
            }
        }
    };
}

with_providers!(declare_provider_id);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for (i, p) in ProviderId::ALL.iter().enumerate() {
            assert_eq!(p.as_str().parse::<ProviderId>().unwrap(), *p);
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::json!(p.as_str())
            );
            assert_eq!(p.index(), i);
            assert!(!p.display_name().is_empty());
        }
        assert!(!ProviderId::ALL.is_empty());
    }

    #[test]
    fn rejects_unknown_and_wrong_case() {
        let ids: Vec<&str> = ProviderId::ALL.iter().map(ProviderId::as_str).collect();
        let upper = ids[0].to_ascii_uppercase();
        let err = upper.parse::<ProviderId>().unwrap_err();
        assert_eq!(err.allowed, ids.join(", "));
        assert!(err.to_string().contains(&ids.join(", ")));
        assert!("stripe".parse::<ProviderId>().is_err());
    }
}
