//! State compaction for the models: hash-consing of `sextant-model` values, and memo tables of
//! the decisions taken on them.
//!
//! A model state holds an [`Interned`] handle (one pointer) where it used to hold a whole
//! `RouteTable` or `TopicRouteData`: every distinct value is stored once, for the life of the
//! process, and two handles are equal exactly when their values are. This is SPIN's "collapse"
//! compression. A model has a few thousand distinct route tables but millions of states, so a
//! state shrinks from kilobytes of string-keyed maps to a few dozen bytes, and cloning, hashing and
//! comparing it costs as much as for a handful of integers.
//!
//! The decisions still run in `sextant-model`: a step reads the value behind a handle, calls the
//! model's code on it, and interns the result. A [`Memo`] remembers each such call by its inputs
//! (handles and small integers), so a step the checker has taken once costs one hash lookup the
//! next time. Values are looked up by address, so the `Debug` of a state prints the values
//! themselves, with their names (stateright's Explorer shows them so).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{LazyLock, PoisonError, RwLock};

/// A handle on a value stored once for the life of the process.
pub struct Interned<T: 'static>(&'static T);

impl<T> Clone for Interned<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Interned<T> {}

impl<T> PartialEq for Interned<T> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl<T> Eq for Interned<T> {}

impl<T> Hash for Interned<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(self.0, state);
    }
}

/// An arbitrary but fixed order (by address): what a canonical form needs to sort by.
impl<T> PartialOrd for Interned<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Interned<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0 as *const T).cmp(&(other.0 as *const T))
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Interned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<T> std::ops::Deref for Interned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0
    }
}

/// Where the values of one type are stored.
pub struct Pool<T: 'static>(RwLock<HashSet<&'static T>>);

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool(RwLock::new(HashSet::new()))
    }
}

/// A type whose values can be interned: it names its pool.
pub trait Intern: Hash + Eq + Send + Sync + Sized + 'static {
    /// The pool of this type.
    fn pool() -> &'static Pool<Self>;
}

/// Implement [`Intern`] for each type, with a pool of its own.
macro_rules! intern_types {
    ($($t:ty),* $(,)?) => {
        $(impl Intern for $t {
            fn pool() -> &'static Pool<$t> {
                static POOL: LazyLock<Pool<$t>> = LazyLock::new(Pool::default);
                &POOL
            }
        })*
    };
}

intern_types!(
    sextant_model::namesrv::RouteTable,
    sextant_model::route::TopicRouteData,
    sextant_model::producer::FaultStrategy,
    sextant_model::producer::SendAttempts,
    sextant_model::broker::ConsumerGroups,
    sextant_model::broker::LockTable,
    super::rebalance::Labels,
);

impl<T: Intern> Interned<T> {
    /// The handle of `value`, storing it if it is new.
    pub fn new(value: T) -> Self {
        let pool = &T::pool().0;
        if let Some(v) = pool
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&value)
        {
            return Interned(v);
        }
        let mut set = pool.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = set.get(&value) {
            return Interned(v);
        }
        let stored: &'static T = Box::leak(Box::new(value));
        set.insert(stored);
        Interned(stored)
    }
}

impl<T: Intern + Clone> Interned<T> {
    /// Change a copy of the value with `f` and intern the result (with `f`'s own answer).
    pub fn update<R>(self, f: impl FnOnce(&mut T) -> R) -> (Self, R) {
        let mut value = self.0.clone();
        let r = f(&mut value);
        (Interned::new(value), r)
    }
}

/// The answers of a pure function, by its inputs.
pub struct Memo<K, V>(RwLock<HashMap<K, V>>);

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Memo(RwLock::new(HashMap::new()))
    }
}

impl<K: Hash + Eq, V: Clone> Memo<K, V> {
    /// The answer for `key`, computed by `f` the first time.
    pub fn get(&self, key: K, f: impl FnOnce() -> V) -> V {
        if let Some(v) = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return v.clone();
        }
        let v = f();
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert(v)
            .clone()
    }

    /// How many answers are stored.
    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K, V> std::fmt::Debug for Memo<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::namesrv::{BrokerRegistration, NamesrvConfig, RouteTable, TopicConfig};

    fn table(brokers: &[&str]) -> RouteTable {
        let mut t = RouteTable::new(NamesrvConfig::default());
        for (i, b) in brokers.iter().enumerate() {
            let reg = BrokerRegistration::new("C", b, 0, &format!("10.0.0.{i}:10911"))
                .with_topics([TopicConfig::new("T", 2), TopicConfig::new("U", 1)]);
            t.register(&reg, 0).expect("registers");
        }
        t
    }

    #[test]
    fn equal_values_share_one_handle_and_different_values_do_not() {
        let a = Interned::new(table(&["intern-a"]));
        let b = Interned::new(table(&["intern-a"]));
        let c = Interned::new(table(&["intern-a", "intern-b"]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(*a, table(&["intern-a"]));
        // Debug shows the value, names and all.
        assert!(format!("{c:?}").contains("intern-b"));
        let (d, ()) = a.update(|t| {
            let reg = BrokerRegistration::new("C", "intern-b", 0, "10.0.0.1:10911")
                .with_topics([TopicConfig::new("T", 2), TopicConfig::new("U", 1)]);
            t.register(&reg, 0).expect("registers");
        });
        assert_eq!(
            d, c,
            "the same table reached another way is the same handle"
        );
    }

    #[test]
    fn a_memo_computes_once_per_key() {
        let memo: Memo<u8, u32> = Memo::default();
        let mut calls = 0;
        assert_eq!(
            memo.get(1, || {
                calls += 1;
                10
            }),
            10
        );
        assert_eq!(memo.get(1, || unreachable!("memoized")), 10);
        assert_eq!(memo.get(2, || 20), 20);
        assert_eq!(calls, 1);
        assert_eq!(memo.len(), 2);
    }
}
