//! The serde shapes of the file. Scalars and lists are read through our own visitors so each
//! element keeps its span (serde's untagged enums would lose it).

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use toml::Spanned;

#[derive(Clone, Debug)]
pub(super) enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Scalar {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "a string",
            Scalar::Int(_) => "an integer",
            Scalar::Bool(_) => "a boolean",
        }
    }
}

pub(super) struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, an integer or a boolean")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(i64::try_from(v).unwrap_or(i64::MAX)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

#[derive(Clone, Debug)]
pub(super) enum Values {
    One(Scalar),
    Many(Vec<Spanned<Scalar>>),
}

pub(super) struct ValuesVisitor;

impl<'de> Visitor<'de> for ValuesVisitor {
    type Value = Values;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, an integer or an array of them")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Values, E> {
        Ok(Values::One(Scalar::Str(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Values, E> {
        Ok(Values::One(Scalar::Str(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Values, E> {
        Ok(Values::One(Scalar::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Values, E> {
        Ok(Values::One(Scalar::Int(
            i64::try_from(v).unwrap_or(i64::MAX),
        )))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Values, E> {
        Ok(Values::One(Scalar::Bool(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Spanned<Scalar>>()? {
            out.push(v);
        }
        Ok(Values::Many(out))
    }
}

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValuesVisitor)
    }
}

pub(super) type Field = Option<Spanned<Scalar>>;
pub(super) type ListField = Option<Spanned<Values>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub(super) outbound: Field,
    pub(super) inbound: Field,
    pub(super) log_all: Field,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) id: Field,
    pub(super) name: Field,
    pub(super) description: Field,
    pub(super) enabled: Field,
    pub(super) action: Field,
    pub(super) log: Field,
    pub(super) direction: Field,
    pub(super) ip_version: Field,
    pub(super) protocol: Field,
    pub(super) remote: ListField,
    pub(super) local: ListField,
    pub(super) remote_port: ListField,
    pub(super) local_port: ListField,
    pub(super) icmp_type: ListField,
    pub(super) icmp_code: ListField,
    pub(super) app: Field,
    pub(super) loopback: Field,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub(super) defaults: Option<RawDefaults>,
    pub(super) sets: Option<BTreeMap<Spanned<String>, Spanned<Values>>>,
    #[serde(default, rename = "rule")]
    pub(super) rules: Vec<Spanned<RawRule>>,
}

/// Elements of a scalar-or-list field, each with its span.
pub(super) fn elements(field: &Spanned<Values>) -> Vec<(Range<usize>, &Scalar)> {
    match field.get_ref() {
        Values::One(v) => vec![(field.span(), v)],
        Values::Many(vs) => vs.iter().map(|v| (v.span(), v.get_ref())).collect(),
    }
}
