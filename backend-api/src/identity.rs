//! Stable type identities: the names snapshots record for the types of keys, namespaces,
//! values, map keys and list elements, declared by code instead of taken from the
//! compiler.
//!
//! Every type stored in state implements [`StateType`]. The library implements it for the
//! primitive types, `String`, `Option`, tuples, arrays, `Box` and the standard collections,
//! composing the identities of generic containers from their parameters; a user type
//! declares its own in one line with [`state_type!`](crate::state_type):
//!
//! ```
//! use cornerstone_backend_api::{StateType, state_type};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! struct Click {
//!     page: String,
//!     at: u64,
//! }
//! // The identity is a name the code keeps when the Rust type is renamed or moved, and a
//! // schema version raised when its serialized form changes.
//! state_type!(Click, "com.example.Click", version = 2);
//!
//! assert_eq!(Click::type_identity(), "com.example.Click@2");
//! assert_eq!(<Option<Vec<(u32, String)>>>::type_identity(), "option<list<(u32, string)>>");
//! ```
//!
//! Snapshots written before identities existed recorded `std::any::type_name`, whose
//! output may change with the compiler. [`canonical_identity`] maps those names of the
//! types above to their identities (`alloc::string::String` is `string`,
//! `core::option::Option<u64>` is `option<u64>`), so every stored snapshot stays readable;
//! a user type declared with `state_type!(Type)` (no name) keeps the path
//! `std::any::type_name` gave it.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// A type's stable identity in snapshots: a name, and a schema version when above 1
/// (`name@version`).
///
/// Two states are compatible when their identities are equal; an identity compares the
/// serialized form, so two Rust types with the same serde encoding may share one (`Vec<T>`
/// and `VecDeque<T>` are both `list<T>`).
pub trait StateType {
    /// The identity recorded in snapshot headers, e.g. `u64`, `string`, `option<u64>`,
    /// `map<string, list<u8>>`, `com.example.Click@2`.
    fn type_identity() -> Cow<'static, str>;
}

/// The identity of `name` at schema `version`: `name` for version 1 (and 0), else
/// `name@version`.
pub fn versioned_identity(name: &str, version: u32) -> String {
    if version <= 1 {
        name.to_owned()
    } else {
        format!("{name}@{version}")
    }
}

/// The name and schema version of an identity: `com.example.Click@2` is
/// (`com.example.Click`, 2), and an identity without a version is version 1. Only the
/// outermost version counts (`option<com.example.Click@2>` is version 1 of its own name).
pub fn split_version(identity: &str) -> (&str, u32) {
    if let Some((name, version)) = identity.rsplit_once('@')
        && !name.is_empty()
        && !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
        && let Ok(version) = version.parse()
    {
        return (name, version);
    }
    (identity, 1)
}

/// Implements [`StateType`] for a user type, in the module that defines it.
///
/// - `state_type!(Type)`: the identity is the type's path, `module_path!()::Type`, which
///   is also what `std::any::type_name` recorded before identities existed: state written
///   by earlier releases restores as is. The identity changes when the type moves.
/// - `state_type!(Type, "com.example.Type")`: a name of your choosing, kept when the Rust
///   type is renamed or moved.
/// - `state_type!(Type, "com.example.Type", version = 2)`: the same at schema version 2
///   (`com.example.Type@2`), a different identity from version 1.
///
/// Generic types implement [`StateType`] by hand, composing their parameters':
///
/// ```
/// use std::borrow::Cow;
/// use cornerstone_backend_api::StateType;
///
/// struct Pair<T>(T, T);
/// impl<T: StateType> StateType for Pair<T> {
///     fn type_identity() -> Cow<'static, str> {
///         format!("com.example.Pair<{}>", T::type_identity()).into()
///     }
/// }
/// assert_eq!(Pair::<u8>::type_identity(), "com.example.Pair<u8>");
/// ```
#[macro_export]
macro_rules! state_type {
    ($ty:ident) => {
        impl $crate::StateType for $ty {
            fn type_identity() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(concat!(module_path!(), "::", stringify!($ty)))
            }
        }
    };
    ($ty:ty, $name:expr) => {
        impl $crate::StateType for $ty {
            fn type_identity() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed($name)
            }
        }
    };
    ($ty:ty, $name:expr, version = $version:expr) => {
        impl $crate::StateType for $ty {
            fn type_identity() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Owned($crate::identity::versioned_identity($name, $version))
            }
        }
    };
}

macro_rules! primitive {
    ($($ty:ty),*) => {
        $(impl StateType for $ty {
            fn type_identity() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }
        })*
    };
}
primitive!(
    bool, char, u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

impl StateType for () {
    fn type_identity() -> Cow<'static, str> {
        Cow::Borrowed("()")
    }
}

impl StateType for String {
    fn type_identity() -> Cow<'static, str> {
        Cow::Borrowed("string")
    }
}

impl<T: StateType> StateType for Option<T> {
    fn type_identity() -> Cow<'static, str> {
        format!("option<{}>", T::type_identity()).into()
    }
}

impl<T: StateType> StateType for Box<T> {
    fn type_identity() -> Cow<'static, str> {
        T::type_identity()
    }
}

impl<T: StateType> StateType for Vec<T> {
    fn type_identity() -> Cow<'static, str> {
        format!("list<{}>", T::type_identity()).into()
    }
}

impl<T: StateType> StateType for VecDeque<T> {
    fn type_identity() -> Cow<'static, str> {
        Vec::<T>::type_identity()
    }
}

impl<T: StateType, const N: usize> StateType for [T; N] {
    fn type_identity() -> Cow<'static, str> {
        format!("[{}; {N}]", T::type_identity()).into()
    }
}

impl<K: StateType, V: StateType> StateType for BTreeMap<K, V> {
    fn type_identity() -> Cow<'static, str> {
        format!("map<{}, {}>", K::type_identity(), V::type_identity()).into()
    }
}

impl<K: StateType, V: StateType, S> StateType for HashMap<K, V, S> {
    fn type_identity() -> Cow<'static, str> {
        BTreeMap::<K, V>::type_identity()
    }
}

impl<T: StateType> StateType for BTreeSet<T> {
    fn type_identity() -> Cow<'static, str> {
        format!("set<{}>", T::type_identity()).into()
    }
}

impl<T: StateType, S> StateType for HashSet<T, S> {
    fn type_identity() -> Cow<'static, str> {
        BTreeSet::<T>::type_identity()
    }
}

macro_rules! tuple {
    ($($name:ident),+) => {
        impl<$($name: StateType),+> StateType for ($($name,)+) {
            fn type_identity() -> Cow<'static, str> {
                let parts: Vec<Cow<'static, str>> = vec![$($name::type_identity()),+];
                tuple_identity(&parts).into()
            }
        }
    };
}
tuple!(A);
tuple!(A, B);
tuple!(A, B, C);
tuple!(A, B, C, D);
tuple!(A, B, C, D, E);
tuple!(A, B, C, D, E, F);
tuple!(A, B, C, D, E, F, G);
tuple!(A, B, C, D, E, F, G, H);

/// `(a, b)`, and `(a,)` for one element, as Rust writes tuple types.
fn tuple_identity<S: AsRef<str>>(parts: &[S]) -> String {
    let joined: Vec<&str> = parts.iter().map(AsRef::as_ref).collect();
    if joined.len() == 1 {
        format!("({},)", joined[0])
    } else {
        format!("({})", joined.join(", "))
    }
}

/// The identity a stored type name stands for: identities are returned as they are, and
/// the `std::any::type_name` output that releases before identities recorded is mapped to
/// the identity of the same type (`alloc::vec::Vec<alloc::string::String>` is
/// `list<string>`, `std::collections::hash::map::HashMap<u32, u64>` is `map<u32, u64>`,
/// `alloc::boxed::Box<T>` is `T`'s). Names of other types (user types) are unchanged.
pub fn canonical_identity(stored: &str) -> Cow<'_, str> {
    // Only `std::any::type_name` output is rewritten: an identity (or any name set by
    // hand) is kept byte for byte.
    if !LEGACY_PATHS.iter().any(|p| stored.contains(p)) {
        return Cow::Borrowed(stored);
    }
    match parse(stored) {
        Some(ty) => {
            let canonical = ty.render();
            if canonical == stored {
                Cow::Borrowed(stored)
            } else {
                Cow::Owned(canonical)
            }
        }
        None => Cow::Borrowed(stored),
    }
}

/// The crate paths of the library types whose `std::any::type_name` is mapped.
const LEGACY_PATHS: [&str; 3] = ["alloc::", "core::", "std::"];

/// A parsed type name.
#[derive(Debug)]
enum Ty<'a> {
    /// A (path) name with generic arguments.
    Named(&'a str, Vec<Ty<'a>>),
    Tuple(Vec<Ty<'a>>),
    Array(Box<Ty<'a>>, &'a str),
}

impl Ty<'_> {
    fn render(&self) -> String {
        match self {
            Ty::Named(name, args) => {
                let args: Vec<String> = args.iter().map(Ty::render).collect();
                let (name, args) = match (*name, args.as_slice()) {
                    ("alloc::string::String" | "std::string::String", []) => ("string", &args[..]),
                    ("core::option::Option" | "std::option::Option", [_]) => ("option", &args[..]),
                    (
                        "alloc::vec::Vec"
                        | "std::vec::Vec"
                        | "alloc::collections::vec_deque::VecDeque"
                        | "std::collections::vec_deque::VecDeque",
                        [_],
                    ) => ("list", &args[..]),
                    (
                        "std::collections::hash::map::HashMap"
                        | "alloc::collections::btree::map::BTreeMap"
                        | "std::collections::btree::map::BTreeMap",
                        [_, _, ..],
                    ) => ("map", &args[..2]),
                    (
                        "std::collections::hash::set::HashSet"
                        | "alloc::collections::btree::set::BTreeSet"
                        | "std::collections::btree::set::BTreeSet",
                        [_, ..],
                    ) => ("set", &args[..1]),
                    ("alloc::boxed::Box" | "std::boxed::Box", [inner]) => return inner.clone(),
                    (name, args) => (name, args),
                };
                if args.is_empty() {
                    name.to_owned()
                } else {
                    format!("{name}<{}>", args.join(", "))
                }
            }
            Ty::Tuple(items) if items.is_empty() => "()".to_owned(),
            Ty::Tuple(items) => {
                let items: Vec<String> = items.iter().map(Ty::render).collect();
                tuple_identity(&items)
            }
            Ty::Array(elem, len) => format!("[{}; {len}]", elem.render()),
        }
    }
}

/// Parses a type name (`std::any::type_name` output or an identity); `None` when it is not
/// one (a name set by hand may be anything).
fn parse(name: &str) -> Option<Ty<'_>> {
    let name = name.trim();
    if let Some(inner) = name.strip_prefix('(') {
        let inner = inner.strip_suffix(')')?;
        let mut parts = split_top_level(inner)?;
        if parts.last().is_some_and(|p| p.trim().is_empty()) {
            parts.pop();
        }
        return Some(Ty::Tuple(
            parts.into_iter().map(parse).collect::<Option<_>>()?,
        ));
    }
    if let Some(inner) = name.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?;
        let (elem, len) = inner.rsplit_once(';')?;
        let len = len.trim();
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return Some(Ty::Array(Box::new(parse(elem)?), len));
    }
    let (path, args) = match name.find('<') {
        Some(open) => {
            let args = name[open + 1..].strip_suffix('>')?;
            let args = split_top_level(args)?
                .into_iter()
                .map(parse)
                .collect::<Option<Vec<_>>>()?;
            (&name[..open], args)
        }
        None => (name, Vec::new()),
    };
    let plain = |c: char| c.is_alphanumeric() || matches!(c, '_' | ':' | '.' | '@' | '-');
    if path.is_empty() || !path.chars().all(plain) {
        return None;
    }
    Some(Ty::Named(path, args))
}

/// Splits `s` at the commas outside brackets; `None` when brackets do not balance.
fn split_top_level(s: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return None;
    }
    if !s[start..].trim().is_empty() || !parts.is_empty() {
        parts.push(&s[start..]);
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Plain;
    state_type!(Plain);

    struct Named;
    state_type!(Named, "com.example.Named");

    struct Versioned;
    state_type!(Versioned, "com.example.Versioned", version = 3);

    #[test]
    fn identities_of_library_types() {
        assert_eq!(u64::type_identity(), "u64");
        assert_eq!(<()>::type_identity(), "()");
        assert_eq!(String::type_identity(), "string");
        assert_eq!(<Option<i32>>::type_identity(), "option<i32>");
        assert_eq!(<Vec<u8>>::type_identity(), "list<u8>");
        assert_eq!(<VecDeque<u8>>::type_identity(), "list<u8>");
        assert_eq!(<Box<String>>::type_identity(), "string");
        assert_eq!(<[u8; 4]>::type_identity(), "[u8; 4]");
        assert_eq!(<(u8,)>::type_identity(), "(u8,)");
        assert_eq!(<(u32, String)>::type_identity(), "(u32, string)");
        assert_eq!(<HashMap<u32, String>>::type_identity(), "map<u32, string>");
        assert_eq!(<BTreeSet<i64>>::type_identity(), "set<i64>");
        assert_eq!(
            <Option<Vec<(u8, Named)>>>::type_identity(),
            "option<list<(u8, com.example.Named)>>"
        );
    }

    #[test]
    fn user_types_declare_their_identity() {
        assert_eq!(Plain::type_identity(), std::any::type_name::<Plain>());
        assert_eq!(Named::type_identity(), "com.example.Named");
        assert_eq!(Versioned::type_identity(), "com.example.Versioned@3");
        assert_eq!(
            split_version("com.example.Versioned@3"),
            ("com.example.Versioned", 3)
        );
        assert_eq!(split_version("com.example.Named"), ("com.example.Named", 1));
        assert_eq!(split_version("option<a@2>"), ("option<a@2>", 1));
        assert_eq!(split_version("@2"), ("@2", 1));
    }

    /// `std::any::type_name` of every library type maps to the type's identity.
    #[test]
    fn rust_type_names_map_to_identities() {
        fn check<T: StateType>() {
            let rust = std::any::type_name::<T>();
            assert_eq!(canonical_identity(rust), T::type_identity(), "{rust}");
            // An identity is its own canonical form.
            let identity = T::type_identity();
            assert_eq!(canonical_identity(&identity), identity);
        }
        check::<u64>();
        check::<()>();
        check::<String>();
        check::<Option<i32>>();
        check::<Vec<u8>>();
        check::<VecDeque<String>>();
        check::<Box<u32>>();
        check::<[u8; 4]>();
        check::<(u8,)>();
        check::<(u32, String)>();
        check::<(u32, (String, Option<u8>), [i8; 2])>();
        check::<HashMap<u32, String>>();
        check::<BTreeMap<String, Vec<u8>>>();
        check::<HashSet<u16>>();
        check::<BTreeSet<i64>>();
        check::<Option<Vec<(u8, Plain)>>>();
        check::<Plain>();
    }

    #[test]
    fn names_set_by_hand_are_kept() {
        for name in [
            "my.Byte",
            "Count",
            "a b",
            "x<",
            "(u8",
            "[u8; x]",
            "",
            "<>",
            " u8",
            "(u8,u16)",
            "\t\t\t@@@@@@@",
        ] {
            assert_eq!(canonical_identity(name), name);
        }
        // The pinned snapshots of release 0.1 name this type so.
        assert_eq!(
            canonical_identity(
                "alloc::collections::btree::map::BTreeMap<u32, alloc::string::String>"
            ),
            "map<u32, string>"
        );
    }
}
