//! Serde helpers for the spec's "name or {name: params}" lists.
//!
//! `methods: [caa, {probe: {l2: 0.1}}]` reads naturally but serde's derive
//! cannot express it without `untagged`, which throws away the error message.
//! `named_choice!` generates an enum whose variants are written either as a
//! bare name or as a one-key mapping, with errors that name the bad variant.

/// Deserializes `P` from an empty mapping: the parameters of a bare name.
pub fn params_from_nothing<'de, P, E>() -> Result<P, E>
where
    P: serde::Deserialize<'de>,
    E: serde::de::Error,
{
    let empty = std::iter::empty::<(&'de str, &'de str)>();
    P::deserialize(serde::de::value::MapDeserializer::<_, E>::new(empty))
}

/// Accepts `name: {}` or `name: null` for variants without parameters.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

pub fn one_of_schema(
    options: Vec<serde_json::Value>,
    description: &str,
) -> schemars::schema::Schema {
    let v = serde_json::json!({ "oneOf": options, "description": description });
    serde_json::from_value(v).expect("static schema is valid")
}

#[macro_export]
macro_rules! named_choice {
    (
        $(#[$meta:meta])*
        $vis:vis enum $Enum:ident {
            $( $name:literal => $Var:ident $( ( $P:ty ) )? : $doc:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis enum $Enum {
            $( #[doc = $doc] $Var $( ( $P ) )? ),+
        }

        impl $Enum {
            /// Every accepted name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            pub fn name(&self) -> &'static str {
                match self { $( named_choice!(@pat $Enum $Var $( ($P) )?) => $name ),+ }
            }
        }

        impl<'de> serde::Deserialize<'de> for $Enum {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $Enum;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        write!(f, "one of {} (a name, or a one-key mapping name: {{params}})",
                            $Enum::NAMES.join(", "))
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$Enum, E> {
                        match s {
                            $( $name => Ok(named_choice!(@bare $Enum $Var $( ($P) )?)), )+
                            other => Err(E::unknown_variant(other, $Enum::NAMES)),
                        }
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<$Enum, A::Error> {
                        use serde::de::Error;
                        let key: String = m.next_key()?.ok_or_else(|| A::Error::invalid_length(0, &self))?;
                        let v = match key.as_str() {
                            $( $name => named_choice!(@mapped m $Enum $Var $( ($P) )?), )+
                            other => return Err(A::Error::unknown_variant(other, $Enum::NAMES)),
                        };
                        if m.next_key::<String>()?.is_some() {
                            return Err(A::Error::custom(format!(
                                "`{key}` must be the only key here; write each choice as its own list item")));
                        }
                        Ok(v)
                    }
                }
                d.deserialize_any(V)
            }
        }

        impl serde::Serialize for $Enum {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let this = self;
                match this {
                    $( $Enum::$Var $( (named_choice!(@wild $P)) )? =>
                        named_choice!(@ser s this $Enum $Var $name $( ($P) )?) ),+
                }
            }
        }

        impl schemars::JsonSchema for $Enum {
            fn schema_name() -> String { stringify!($Enum).to_string() }
            fn json_schema(gen: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
                let mut options = Vec::new();
                $( named_choice!(@schema gen options $name $doc $( ($P) )?); )+
                $crate::spec::choice::one_of_schema(options, concat!($($name, ": ", $doc, "\n"),+))
            }
        }
    };

    (@pat $Enum:ident $Var:ident ($P:ty)) => { $Enum::$Var(_) };
    (@pat $Enum:ident $Var:ident) => { $Enum::$Var };
    (@bare $Enum:ident $Var:ident ($P:ty)) => {
        $Enum::$Var($crate::spec::choice::params_from_nothing::<$P, E>()?)
    };
    (@bare $Enum:ident $Var:ident) => { $Enum::$Var };
    (@mapped $m:ident $Enum:ident $Var:ident ($P:ty)) => {
        match $m.next_value::<Option<$P>>()? {
            Some(p) => $Enum::$Var(p),
            None => $Enum::$Var($crate::spec::choice::params_from_nothing::<$P, A::Error>()?),
        }
    };
    (@mapped $m:ident $Enum:ident $Var:ident) => {{
        let _: Option<$crate::spec::choice::NoParams> = $m.next_value()?;
        $Enum::$Var
    }};
    (@wild $P:ty) => { _ };
    (@ser $s:ident $this:ident $Enum:ident $Var:ident $name:literal ($P:ty)) => {{
        use serde::ser::SerializeMap;
        #[allow(irrefutable_let_patterns)]
        let $Enum::$Var(p) = $this else { unreachable!("matched above") };
        let mut m = $s.serialize_map(Some(1))?;
        m.serialize_entry($name, p)?;
        m.end()
    }};
    (@ser $s:ident $this:ident $Enum:ident $Var:ident $name:literal) => {{
        let _ = $this;
        $s.serialize_str($name)
    }};
    (@schema $gen:ident $options:ident $name:literal $doc:literal ($P:ty)) => {{
        let sub = $gen.subschema_for::<$P>();
        let sub = serde_json::to_value(sub).expect("schema serializes");
        $options.push(serde_json::json!({ "const": $name, "description": $doc }));
        $options.push(serde_json::json!({
            "type": "object", "description": $doc, "additionalProperties": false,
            "required": [$name], "properties": { $name: sub }
        }));
    }};
    (@schema $gen:ident $options:ident $name:literal $doc:literal) => {{
        $options.push(serde_json::json!({ "const": $name, "description": $doc }));
    }};
}
