//! One domain's findings by id, with secondary indexes (cluster, node, natural key, alert
//! aggregate), so that listing one cluster of a 1,000-cluster world, looking up one alert
//! aggregate and the generator's duplicate checks cost the matching rows, not every row. Pure
//! data: no IO, no clock.
//!
//! The index keys of a row are computed by a function given at construction; every change
//! goes through [`Table::insert`], [`Table::update`] or [`Table::remove`], which re-index the
//! row, so a control-plane patch that moves a finding to another cluster is listed there.

use std::collections::{BTreeMap, BTreeSet, HashMap, btree_map};

/// Index key of a cluster id.
pub(crate) fn cluster_key(cluster: &str) -> String {
    format!("c\u{0}{cluster}")
}

/// Index key of a Security Center node UUID.
pub(crate) fn node_key(uuid: &str) -> String {
    format!("u\u{0}{uuid}")
}

/// Index key of an alert's aggregate (`AlarmUniqueInfo`).
pub(crate) fn alarm_key(alarm_unique_info: &str) -> String {
    format!("a\u{0}{alarm_unique_info}")
}

/// Rows by id plus the ids of the rows carrying each index key.
pub(crate) struct Table<T> {
    rows: BTreeMap<i64, T>,
    keys: fn(&T) -> Vec<String>,
    index: HashMap<String, BTreeSet<i64>>,
    /// Bumped by every change: a listing computed at one version is still right at it.
    version: u64,
}

impl<T> Table<T> {
    /// An empty table whose rows are indexed under `keys(row)`.
    pub(crate) fn new(keys: fn(&T) -> Vec<String>) -> Self {
        Table {
            rows: BTreeMap::new(),
            keys,
            index: HashMap::new(),
            version: 0,
        }
    }

    fn index_row(&mut self, id: i64, row: &T) {
        for k in (self.keys)(row) {
            self.index.entry(k).or_default().insert(id);
        }
    }

    fn unindex_row(&mut self, id: i64, row: &T) {
        for k in (self.keys)(row) {
            if let Some(ids) = self.index.get_mut(&k) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.index.remove(&k);
                }
            }
        }
    }

    /// Inserts or replaces row `id`.
    pub(crate) fn insert(&mut self, id: i64, row: T) {
        self.version += 1;
        self.remove(id);
        self.index_row(id, &row);
        self.rows.insert(id, row);
    }

    /// Removes row `id`.
    pub(crate) fn remove(&mut self, id: i64) -> Option<T> {
        self.version += 1;
        let row = self.rows.remove(&id)?;
        self.unindex_row(id, &row);
        Some(row)
    }

    /// Changes row `id` in place and re-indexes it; `None` when there is no such row.
    pub(crate) fn update<R>(&mut self, id: i64, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut row = self.remove(id)?;
        let out = f(&mut row);
        self.insert(id, row);
        Some(out)
    }

    /// Changes so far: equal versions mean equal contents.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Row `id`.
    pub(crate) fn get(&self, id: i64) -> Option<&T> {
        self.rows.get(&id)
    }

    /// Every row by ascending id.
    pub(crate) fn values(&self) -> btree_map::Values<'_, i64, T> {
        self.rows.values()
    }

    /// Every `(id, row)` by ascending id.
    pub(crate) fn iter(&self) -> btree_map::Iter<'_, i64, T> {
        self.rows.iter()
    }

    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether some row carries `key`.
    pub(crate) fn has_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// The rows carrying `key` by ascending id, or every row when `key` is `None`: what a
    /// listing filtered by cluster or node walks instead of the whole table.
    pub(crate) fn scan<'a>(&'a self, key: Option<&str>) -> Box<dyn Iterator<Item = &'a T> + 'a> {
        match key {
            None => Box::new(self.rows.values()),
            Some(k) => Box::new(
                self.index
                    .get(k)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| self.rows.get(id)),
            ),
        }
    }
}

impl<T: PartialEq> PartialEq for Table<T> {
    fn eq(&self, other: &Self) -> bool {
        self.rows == other.rows
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.rows.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(row: &(String, u8)) -> Vec<String> {
        vec![cluster_key(&row.0)]
    }

    #[test]
    fn updates_move_rows_between_keys() {
        let mut t = Table::new(keys);
        t.insert(1, ("a".to_string(), 1));
        t.insert(2, ("b".to_string(), 2));
        t.insert(3, ("a".to_string(), 3));
        let a: Vec<u8> = t.scan(Some(&cluster_key("a"))).map(|r| r.1).collect();
        assert_eq!(a, [1, 3]);
        t.update(3, |r| r.0 = "b".into());
        let b: Vec<u8> = t.scan(Some(&cluster_key("b"))).map(|r| r.1).collect();
        assert_eq!(b, [2, 3]);
        assert_eq!(t.remove(1).map(|r| r.1), Some(1));
        assert!(!t.has_key(&cluster_key("a")));
        assert_eq!(t.scan(None).count(), 2);
        assert_eq!(t.scan(Some("nothing")).count(), 0);
    }
}
