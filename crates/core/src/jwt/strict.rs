//! serde_json held to what RFC 7515 and 7519 call a JOSE header and a claims
//! set: a JSON object whose member names are unique.
//!
//! serde's derived structs also read the sequence form (`[iss, sub, …]`) and
//! let an unknown member appear twice, so a token whose payload was an array
//! or named a member twice read as if it were well formed. Reading through
//! [`from_slice`] instead refuses, in every object a type reads (the header,
//! the claims, each grant): an array where a struct belongs, and a member
//! name seen twice in one object, known or not. Members a type does not read
//! are skipped unread, as serde_json skips them: RFC 7515 §4 and RFC 7519 §4
//! ask only that names be unique, and what is never read cannot mislead.
//!
//! It is one pass over the bytes, the same as serde_json alone, plus a
//! look-up of each name among those before it: a bit per field for the
//! names a struct declares, a list only for the others.

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

/// Why [`from_slice`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The text is not a JSON object.
    NotAnObject,
    /// An object inside it is written as an array.
    Array,
    /// One object names a member twice.
    Duplicate,
    /// The top-level object has a member the caller refuses.
    Refused(&'static str),
    /// Not JSON, or not the type asked for.
    Unreadable,
}

/// Reads `T` from `bytes` as a JSON object with unique member names, none of
/// them (at the top level) one of `refused`.
pub(crate) fn from_slice<'de, T: de::Deserialize<'de>>(
    bytes: &'de [u8],
    refused: &'static [&'static str],
) -> Result<T, Fault> {
    // A type with a custom Deserialize could ask for a sequence at the top;
    // no JOSE header or claims set is one.
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(Fault::NotAnObject);
    }
    let fault = Cell::new(None);
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let strict = Strict {
        de: &mut json,
        fault: &fault,
        refused,
    };
    let read = T::deserialize(strict).and_then(|value| json.end().map(|()| value));
    read.map_err(|_| fault.get().unwrap_or(Fault::Unreadable))
}

/// Above this many names in one object, they are looked up in a hash set
/// rather than compared one by one, so a header of thousands of names costs
/// no more than reading it.
const FEW_NAMES: usize = 16;

/// The member names of one object so far.
struct Names<'de> {
    /// The fields of the struct being read (none for a map).
    fields: &'static [&'static str],
    /// Which of the first 64 `fields` were seen: the common names cost no
    /// allocation.
    seen_fields: u64,
    few: Vec<Cow<'de, str>>,
    /// Made only past [`FEW_NAMES`]: even an empty one costs a seed.
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Names<'de> {
    fn new(fields: &'static [&'static str]) -> Self {
        Self {
            fields,
            seen_fields: 0,
            few: Vec::new(),
            many: None,
        }
    }

    /// Adds `name`; false when the object already had it.
    fn insert(&mut self, name: Cow<'de, str>) -> bool {
        if let Some(field) = self.fields.iter().take(64).position(|f| name == *f) {
            let bit = 1 << field;
            let new = self.seen_fields & bit == 0;
            self.seen_fields |= bit;
            return new;
        }
        if let Some(many) = &mut self.many {
            return many.insert(name);
        }
        if self.few.contains(&name) {
            return false;
        }
        if self.few.len() < FEW_NAMES {
            self.few.push(name);
            return true;
        }
        let mut many: HashSet<_> = self.few.drain(..).collect();
        many.insert(name);
        self.many = Some(many);
        true
    }
}

/// A deserializer that passes every request on, with the strict visitor.
struct Strict<'a, D> {
    de: D,
    fault: &'a Cell<Option<Fault>>,
    /// Names refused in the object this deserializer reads (top level only).
    refused: &'static [&'static str],
}

impl<'a, D> Strict<'a, D> {
    fn wrap<V>(&self, inner: V, fields: Option<&'static [&'static str]>) -> Wrap<'a, V> {
        Wrap {
            inner,
            fault: self.fault,
            refused: self.refused,
            fields,
        }
    }
}

macro_rules! forward {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            let visitor = self.wrap(visitor, None);
            self.de.$method(visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<'_, D> {
    type Error = D::Error;

    forward! {
        deserialize_any deserialize_bool
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
        deserialize_bytes deserialize_byte_buf deserialize_option deserialize_unit
        deserialize_seq deserialize_map deserialize_identifier
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor, None);
        self.de.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor, None);
        self.de.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor, None);
        self.de.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor, None);
        self.de.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor, Some(fields));
        self.de.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor, None);
        self.de.deserialize_enum(name, variants, visitor)
    }

    // What a type does not read is skipped unread, as serde_json would.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.de.deserialize_ignored_any(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// The visitor a [`Strict`] deserializer hands on: the type's own, with
/// whatever it is given to read further made strict too.
struct Wrap<'a, V> {
    inner: V,
    fault: &'a Cell<Option<Fault>>,
    refused: &'static [&'static str],
    /// The fields of the struct being read, whose sequence form is
    /// refused; `None` for anything else.
    fields: Option<&'static [&'static str]>,
}

impl<'a, V> Wrap<'a, V> {
    fn strict<D>(&self, de: D) -> Strict<'a, D> {
        Strict {
            de,
            fault: self.fault,
            refused: &[],
        }
    }
}

macro_rules! pass {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    pass! {
        visit_bool(bool)
        visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
        visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128)
        visit_f32(f32) visit_f64(f64) visit_char(char)
        visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
        visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        let de = self.strict(de);
        self.inner.visit_some(de)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        let de = self.strict(de);
        self.inner.visit_newtype_struct(de)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        if self.fields.is_some() {
            self.fault.set(Some(Fault::Array));
            return Err(de::Error::invalid_type(Unexpected::Seq, &self));
        }
        self.inner.visit_seq(StrictSeq {
            seq,
            fault: self.fault,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(StrictMap {
            map,
            names: Names::new(self.fields.unwrap_or_default()),
            fault: self.fault,
            refused: self.refused,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(StrictEnum {
            data,
            fault: self.fault,
        })
    }
}

/// A seed whose value is read strictly.
struct StrictSeed<'a, S> {
    seed: S,
    fault: &'a Cell<Option<Fault>>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for StrictSeed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Strict {
            de,
            fault: self.fault,
            refused: &[],
        })
    }
}

struct StrictSeq<'a, A> {
    seq: A,
    fault: &'a Cell<Option<Fault>>,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for StrictSeq<'_, A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        self.seq.next_element_seed(StrictSeed {
            seed,
            fault: self.fault,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

/// An object's members, each name checked against those before it.
struct StrictMap<'a, 'de, A> {
    map: A,
    names: Names<'de>,
    fault: &'a Cell<Option<Fault>>,
    refused: &'static [&'static str],
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for StrictMap<'_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        self.map.next_key_seed(NameSeed {
            seed,
            names: &mut self.names,
            fault: self.fault,
            refused: self.refused,
        })
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(StrictSeed {
            seed,
            fault: self.fault,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// The seed of one member name: it sees the name as the type reads it.
struct NameSeed<'n, 'a, 'de, S> {
    seed: S,
    names: &'n mut Names<'de>,
    fault: &'a Cell<Option<Fault>>,
    refused: &'static [&'static str],
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for NameSeed<'_, '_, 'de, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        let NameSeed {
            seed,
            names,
            fault,
            refused,
        } = self;
        seed.deserialize(NameDeserializer {
            de,
            names,
            fault,
            refused,
        })
    }
}

/// Reads a member name as a string, whatever the type asks for: JSON names
/// are strings, and the name must be seen (unescaped) to be compared.
struct NameDeserializer<'n, 'a, 'de, D> {
    de: D,
    names: &'n mut Names<'de>,
    fault: &'a Cell<Option<Fault>>,
    refused: &'static [&'static str],
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for NameDeserializer<'_, '_, 'de, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.de.deserialize_str(NameVisitor {
            inner: visitor,
            names: self.names,
            fault: self.fault,
            refused: self.refused,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct NameVisitor<'n, 'a, 'de, V> {
    inner: V,
    names: &'n mut Names<'de>,
    fault: &'a Cell<Option<Fault>>,
    refused: &'static [&'static str],
}

impl<'de, V> NameVisitor<'_, '_, 'de, V> {
    fn check<E: de::Error>(&mut self, name: Cow<'de, str>) -> Result<(), E> {
        if let Some(refused) = self.refused.iter().copied().find(|r| name == *r) {
            self.fault.set(Some(Fault::Refused(refused)));
            return Err(E::custom(format_args!("member {refused:?} is refused")));
        }
        if !self.names.insert(name) {
            self.fault.set(Some(Fault::Duplicate));
            return Err(E::custom("duplicate member name"));
        }
        Ok(())
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for NameVisitor<'_, '_, 'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_borrowed_str<E: de::Error>(mut self, v: &'de str) -> Result<V::Value, E> {
        self.check(Cow::Borrowed(v))?;
        self.inner.visit_borrowed_str(v)
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<V::Value, E> {
        self.check(Cow::Owned(v.to_owned()))?;
        self.inner.visit_str(v)
    }

    fn visit_string<E: de::Error>(mut self, v: String) -> Result<V::Value, E> {
        self.check(Cow::Owned(v.clone()))?;
        self.inner.visit_string(v)
    }
}

struct StrictEnum<'a, A> {
    data: A,
    fault: &'a Cell<Option<Fault>>,
}

impl<'a, 'de, A: EnumAccess<'de>> EnumAccess<'de> for StrictEnum<'a, A> {
    type Error = A::Error;
    type Variant = StrictVariant<'a, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (value, variant) = self.data.variant_seed(seed)?;
        Ok((
            value,
            StrictVariant {
                variant,
                fault: self.fault,
            },
        ))
    }
}

struct StrictVariant<'a, A> {
    variant: A,
    fault: &'a Cell<Option<Fault>>,
}

impl<'a, A> StrictVariant<'a, A> {
    fn wrap<V>(&self, inner: V, fields: Option<&'static [&'static str]>) -> Wrap<'a, V> {
        Wrap {
            inner,
            fault: self.fault,
            refused: &[],
            fields,
        }
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for StrictVariant<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.variant.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.variant.newtype_variant_seed(StrictSeed {
            seed,
            fault: self.fault,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let visitor = self.wrap(visitor, None);
        self.variant.tuple_variant(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visitor = self.wrap(visitor, Some(fields));
        self.variant.struct_variant(fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Claims, Grant};
    use serde::Deserialize;
    use std::collections::BTreeMap;

    const CLAIMS: &str = r#"{"iss":"tessera","sub":"u1","jti":"t1","iat":1,"nbf":1,"exp":2,"typ":"api","grants":[{"resource":"*","actions":["*"]}]}"#;

    fn claims(text: &str) -> Result<Claims, Fault> {
        from_slice(text.as_bytes(), &["aud"])
    }

    #[test]
    fn an_object_reads_as_serde_json_reads_it() {
        let strict = claims(CLAIMS).expect("strict");
        let plain: Claims = serde_json::from_str(CLAIMS).expect("plain");
        assert_eq!(strict, plain);
        assert_eq!(strict.grants, vec![Grant::everything()]);
        // Unknown members, however odd, are skipped unread.
        let extra = CLAIMS.replacen('{', r#"{"x":{"a":1,"a":[{"b":2,"b":"\ud800"}]},"#, 1);
        assert_eq!(claims(&extra), Ok(plain));
        // Maps and untyped values are strict too.
        let map: Result<BTreeMap<String, serde_json::Value>, _> =
            from_slice(br#"{"a":{"b":1,"b":2}}"#, &[]);
        assert_eq!(map, Err(Fault::Duplicate));
    }

    #[test]
    fn arrays_for_objects_are_refused() {
        let seq = r#"["tessera","u1","t1",1,1,2,"api",[]]"#;
        assert!(
            serde_json::from_str::<Claims>(seq).is_ok(),
            "serde's own reading"
        );
        assert_eq!(claims(seq), Err(Fault::NotAnObject));
        assert_eq!(claims(&format!(" \n\t{seq}")), Err(Fault::NotAnObject));
        assert_eq!(claims(""), Err(Fault::NotAnObject));
        assert_eq!(claims("null"), Err(Fault::NotAnObject));
        let grant_seq = CLAIMS.replace(r#"{"resource":"*","actions":["*"]}"#, r#"["*",["*"]]"#);
        assert!(serde_json::from_str::<Claims>(&grant_seq).is_ok());
        assert_eq!(claims(&grant_seq), Err(Fault::Array));
    }

    #[test]
    fn a_name_twice_in_one_object_is_refused() {
        for twice in [
            CLAIMS.replacen('{', r#"{"exp":3,"#, 1),
            CLAIMS.replacen('{', r#"{"\u0065xp":3,"#, 1),
            CLAIMS.replacen('{', r#"{"x":1,"x":1,"#, 1),
            CLAIMS.replace(r#""actions""#, r#""y":0,"y":0,"actions""#),
            CLAIMS.replace(r#""actions""#, r#""actions":[],"actions""#),
        ] {
            assert_eq!(claims(&twice), Err(Fault::Duplicate), "{twice}");
        }
        // Past FEW_NAMES the names are in a hash set: still found.
        let mut many: String = (0..40).map(|i| format!(r#""m{i}":0,"#)).collect();
        assert!(claims(&CLAIMS.replacen('{', &format!("{{{many}"), 1)).is_ok());
        many.push_str(r#""m7":0,"#);
        let text = CLAIMS.replacen('{', &format!("{{{many}"), 1);
        assert_eq!(claims(&text), Err(Fault::Duplicate));
    }

    #[test]
    fn a_refused_name_is_refused_at_the_top_only() {
        let aud = CLAIMS.replacen('{', r#"{"aud":null,"#, 1);
        assert_eq!(claims(&aud), Err(Fault::Refused("aud")));
        let nested = CLAIMS.replace(r#""actions""#, r#""aud":0,"actions""#);
        assert!(claims(&nested).is_ok());
    }

    #[test]
    fn anything_else_is_unreadable() {
        assert_eq!(claims("{"), Err(Fault::Unreadable));
        assert_eq!(claims(&format!("{CLAIMS} {{}}")), Err(Fault::Unreadable));
        assert_eq!(claims(r#"{"iss":"tessera"}"#), Err(Fault::Unreadable));
        #[derive(Debug, Deserialize, PartialEq)]
        enum Kind {
            Unit,
            Pair(u8, u8),
            Shape { side: u8 },
        }
        let kind = |t: &str| from_slice::<BTreeMap<String, Kind>>(t.as_bytes(), &[]);
        assert_eq!(
            kind(r#"{"a":"Unit","b":{"Pair":[1,2]},"c":{"Shape":{"side":3}}}"#)
                .expect("enums")
                .len(),
            3
        );
        assert_eq!(kind(r#"{"c":{"Shape":[3]}}"#), Err(Fault::Array));
        assert_eq!(
            kind(r#"{"c":{"Shape":{"side":3,"side":3}}}"#),
            Err(Fault::Duplicate)
        );
    }
}
