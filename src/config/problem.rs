//! What validation reports: every problem at once, each with its key and a fix.

use std::fmt::Write;

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message} (fix: {fix})")]
pub struct Problem {
    pub key: String,
    pub message: String,
    pub fix: String,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the configuration has {} problem(s):\n{}", .0.len(), bullets(.0))]
pub struct ConfigError(pub Vec<Problem>);

/// One `  - problem` line per problem.
fn bullets(problems: &[Problem]) -> String {
    let mut out = String::new();
    for p in problems {
        let _ = writeln!(out, "  - {p}");
    }
    out
}

impl ConfigError {
    /// A configuration that could not be read at all: one problem, with the file as its key.
    pub(super) fn file(message: String, fix: String) -> Self {
        ConfigError(vec![Problem {
            key: "(file)".into(),
            message,
            fix,
        }])
    }
}

pub(super) fn problem(
    problems: &mut Vec<Problem>,
    key: impl Into<String>,
    message: impl Into<String>,
    fix: impl Into<String>,
) {
    problems.push(Problem {
        key: key.into(),
        message: message.into(),
        fix: fix.into(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_listed_on_its_own_line() {
        let p = |key: &str| Problem {
            key: key.into(),
            message: "missing".into(),
            fix: "set it".into(),
        };
        let err = ConfigError(vec![p("server.listen"), p("keys")]);
        assert_eq!(
            err.to_string(),
            "the configuration has 2 problem(s):\n  - server.listen: missing (fix: set it)\n  - keys: missing (fix: set it)\n"
        );
    }
}
