//! Environment overrides: `BROKER_<SECTION>__<KEY>=value` sets a key of the file, or adds it.

use super::problem::{Problem, problem};

pub const ENV_PREFIX: &str = "BROKER_";

/// `BROKER_PROVIDERS__CORP__CLIENT_SECRET=x` sets `providers.corp.client_secret = "x"`. A value that
/// reads as a TOML array, inline table or boolean is taken as one; anything else is a string.
pub(super) fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    sections: &[&str],
    problems: &mut Vec<Problem>,
) {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if path.len() < 2
            || path.iter().any(|s| s.is_empty())
            || !sections.contains(&path[0].as_str())
        {
            // Not ours to interpret unless it names a known section; BROKER_LOG is the log
            // filter (which `[log] level` sets in the file).
            if sections.contains(&path[0].as_str()) && name != "BROKER_LOG" {
                problem(
                    problems,
                    name.clone(),
                    "malformed override name",
                    "use BROKER_<SECTION>__<KEY>, e.g. BROKER_SERVER__PUBLIC_URL",
                );
            }
            continue;
        }
        let value = parse_env_value(&raw);
        if let Err(seg) = set_path(table, &path, value) {
            problem(
                problems,
                name.clone(),
                format!("`{seg}` is not a table in the file, so it cannot hold keys"),
                "remove the override or the conflicting key in the file",
            );
        }
    }
}

/// Sets `path` in `table`, creating tables on the way; on a non-table in the way, returns its name.
fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Ok(()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => match table
            .entry(first.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        {
            toml::Value::Table(t) => set_path(t, rest, value),
            _ => Err(first.clone()),
        },
    }
}

fn parse_env_value(raw: &str) -> toml::Value {
    let trimmed = raw.trim();
    let structured = trimmed.starts_with('[')
        || trimmed.starts_with('{')
        || trimmed == "true"
        || trimmed == "false";
    if structured
        && let Ok(t) = format!("v = {trimmed}").parse::<toml::Table>()
        && let Some(v) = t.get("v")
    {
        return v.clone();
    }
    toml::Value::String(raw.to_string())
}
