//! A WebAssembly instance's config and its plugin's base config, as maubot keeps them: a new
//! instance starts from the base config, and keys the base config gained since (a new version
//! of the plugin) are added to an instance's config, with the instance's own values kept.

use serde_json::Value;

/// The config an instance starts with, if it must change: the base config for an empty one;
/// `config` with the keys it lacks taken from `base` otherwise. `None` leaves the instance's
/// text untouched (comments and all), as does a config or base config that is not a mapping.
pub fn starting_config(config: &str, base: &str) -> Option<String> {
    if config.trim().is_empty() {
        return Some(base.to_owned());
    }
    let mut own: Value = serde_saphyr::from_str(config).ok()?;
    let base: Value = serde_saphyr::from_str(base).ok()?;
    if !fill(&mut own, &base) {
        return None;
    }
    serde_saphyr::to_string(&own).ok()
}

/// Adds what `base` has and `own` lacks, in mappings at any depth; whether it added anything.
fn fill(own: &mut Value, base: &Value) -> bool {
    let (Value::Object(own), Value::Object(base)) = (own, base) else {
        return false;
    };
    let mut added = false;
    for (key, value) in base {
        match own.get_mut(key) {
            Some(mine) => added |= fill(mine, value),
            None => {
                own.insert(key.clone(), value.clone());
                added = true;
            }
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_saphyr::from_str(text).expect("yaml")
    }

    #[test]
    fn an_empty_config_is_the_base_config() {
        let base = "# greeting\ngreeting: hi\n";
        assert_eq!(starting_config("", base).as_deref(), Some(base));
        assert_eq!(starting_config("  \n", base).as_deref(), Some(base));
    }

    #[test]
    fn new_keys_are_added_and_own_values_kept() {
        let base = "greeting: hi\nlimits:\n  rate: 5\n  burst: 10\nrooms: [a]\n";
        let own = "greeting: hello\nlimits:\n  rate: 1\nrooms: [b, c]\nextra: 1\n";
        let merged = starting_config(own, base).expect("changed");
        assert_eq!(
            yaml(&merged),
            yaml("greeting: hello\nlimits: {rate: 1, burst: 10}\nrooms: [b, c]\nextra: 1\n")
        );
    }

    #[test]
    fn a_complete_or_unreadable_config_is_left_alone() {
        let base = "greeting: hi\n";
        assert_eq!(starting_config("# mine\ngreeting: yo\n", base), None);
        assert_eq!(starting_config("greeting: [unclosed\n", base), None);
        assert_eq!(starting_config("- a list\n", base), None);
        assert_eq!(starting_config("greeting: yo\n", "not: [yaml"), None);
    }
}
