//! A map that remembers what changed: [`Table`] holds one kind of record by key, in key order, and
//! keeps the value each key had before its first change since the last commit. So a mutation writes
//! only the rows it touched (its cost does not grow with the store), and a failed write is undone in
//! memory as it was in the database.
//!
//! Plain data: no I/O; it never decides what a record means.
use std::collections::BTreeMap;
use std::collections::btree_map;

/// Records by key, with the changes since the last commit.
#[derive(Debug, Clone)]
pub(super) struct Table<V> {
    rows: BTreeMap<String, V>,
    /// Each key changed since the last commit, with its value before the first change (`None`: it
    /// did not exist).
    before: BTreeMap<String, Option<V>>,
}

impl<V: Clone> Table<V> {
    pub(super) fn new() -> Self {
        Table {
            rows: BTreeMap::new(),
            before: BTreeMap::new(),
        }
    }

    /// Rows read from the database: nothing to commit.
    pub(super) fn loaded(rows: BTreeMap<String, V>) -> Self {
        Table {
            rows,
            before: BTreeMap::new(),
        }
    }

    fn touch(&mut self, key: &str) {
        if !self.before.contains_key(key) {
            self.before
                .insert(key.to_string(), self.rows.get(key).cloned());
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<&V> {
        self.rows.get(key)
    }

    pub(super) fn contains_key(&self, key: &str) -> bool {
        self.rows.contains_key(key)
    }

    pub(super) fn insert(&mut self, key: String, value: V) -> Option<V> {
        self.touch(&key);
        self.rows.insert(key, value)
    }

    pub(super) fn remove(&mut self, key: &str) -> Option<V> {
        if !self.rows.contains_key(key) {
            return None;
        }
        self.touch(key);
        self.rows.remove(key)
    }

    /// The record to change in place (it counts as changed).
    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        if !self.rows.contains_key(key) {
            return None;
        }
        self.touch(key);
        self.rows.get_mut(key)
    }

    /// Removes the records `keep` refuses; visits every record (use [`Table::remove_prefix`] for a
    /// subtree).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&str, &V) -> bool) {
        let gone: Vec<String> = self
            .rows
            .iter()
            .filter(|(k, v)| !keep(k, v))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.remove(&k);
        }
    }

    /// The records whose keys start with `prefix`, in key order (a range scan, not a full one).
    pub(super) fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a V)> + 'a {
        self.rows
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Removes the records whose keys start with `prefix`; returns them.
    pub(super) fn remove_prefix(&mut self, prefix: &str) -> Vec<(String, V)> {
        let keys: Vec<String> = self.with_prefix(prefix).map(|(k, _)| k.clone()).collect();
        keys.into_iter()
            .filter_map(|k| self.remove(&k).map(|v| (k, v)))
            .collect()
    }

    pub(super) fn iter(&self) -> btree_map::Iter<'_, String, V> {
        self.rows.iter()
    }

    pub(super) fn values(&self) -> btree_map::Values<'_, String, V> {
        self.rows.values()
    }

    /// Each key changed since the last commit: its value before and its value now (`None`: absent).
    pub(super) fn changes(&self) -> impl Iterator<Item = (&str, Option<&V>, Option<&V>)> {
        self.before
            .iter()
            .map(|(k, old)| (k.as_str(), old.as_ref(), self.rows.get(k)))
    }

    /// The keys changed since the last commit.
    pub(super) fn changed_keys(&self) -> Vec<String> {
        self.before.keys().cloned().collect()
    }

    /// The changes are in the database: forget them.
    pub(super) fn committed(&mut self) {
        self.before.clear();
    }

    /// The changes could not be written: puts every changed record back as it was.
    pub(super) fn undo(&mut self) {
        for (k, old) in std::mem::take(&mut self.before) {
            match old {
                Some(v) => self.rows.insert(k, v),
                None => self.rows.remove(&k),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_keep_the_first_before_value_and_undo_restores_it() {
        let mut t = Table::loaded(BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 2)]));
        t.insert("a".into(), 10);
        t.insert("a".into(), 11);
        t.remove("b");
        t.insert("c".into(), 3);
        t.remove("missing");
        let changes: Vec<_> = t
            .changes()
            .map(|(k, b, n)| (k, b.copied(), n.copied()))
            .collect();
        assert_eq!(
            changes,
            [
                ("a", Some(1), Some(11)),
                ("b", Some(2), None),
                ("c", None, Some(3))
            ]
        );
        t.undo();
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            [(&"a".to_string(), &1), (&"b".to_string(), &2)]
        );
        assert_eq!(t.changes().count(), 0);
    }

    #[test]
    fn prefix_removal_is_a_range() {
        let mut t = Table::new();
        for k in ["/a", "/a/b", "/a/b/c", "/ab", "/b"] {
            t.insert(k.to_string(), ());
        }
        t.committed();
        let gone: Vec<String> = t.remove_prefix("/a/").into_iter().map(|(k, _)| k).collect();
        assert_eq!(gone, ["/a/b", "/a/b/c"]);
        assert_eq!(t.iter().count(), 3);
        assert_eq!(t.changed_keys(), ["/a/b", "/a/b/c"]);
    }
}
