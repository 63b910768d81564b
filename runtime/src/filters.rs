//! Docker's rule for `--filter KEY=VALUE` flags: filters with the same key
//! pass when any of them does, filters with different keys must all pass
//! (`--filter name=a --filter name=b --filter status=running`: named a or
//! b, and running).

/// Whether `filters` pass, each with its `key` and its own `matches`.
pub fn all_keys_match<F>(
    filters: &[F],
    key: impl Fn(&F) -> &str,
    matches: impl Fn(&F) -> bool,
) -> bool {
    let mut keys: Vec<&str> = filters.iter().map(&key).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.iter()
        .all(|k| filters.iter().filter(|f| key(f) == *k).any(&matches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_keys_or_and_different_keys_and() {
        let pass = |filters: &[(&str, bool)]| all_keys_match(filters, |f| f.0, |f| f.1);
        assert!(pass(&[]));
        assert!(pass(&[("name", false), ("name", true)]));
        assert!(!pass(&[("name", true), ("status", false)]));
        assert!(pass(&[("name", false), ("status", true), ("name", true)]));
    }
}
