//! The source layout keeps its shape: no two source files import each other in a circle, the
//! configuration imports nothing above it, no route matches on a provider's kind, and no file
//! holds more than one idea's worth of lines.
//!
//! Imports are read from the text, as a reviewer would: every `use crate::…`, `use super::…` and
//! `use self::…` tree and every inline `crate::a::b` path, outside `#[cfg(test)]` modules and
//! comments, resolved to the file that defines the longest module prefix. A module and its own
//! parent are one idea split over files and may use each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

struct Source {
    path: PathBuf,
    module: Module,
    /// The text without comments and without the test module at the end.
    code: String,
    /// Lines before the test module.
    lines: usize,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn sources() -> Vec<Source> {
    let root = src_dir();
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(&root).unwrap().with_extension("");
                let mut module: Module = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if module == ["lib"] || module == ["main"] {
                    module.clear();
                } else if module.last().is_some_and(|l| l == "mod") {
                    module.pop();
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let before_tests = without_tests(&text);
                out.push(Source {
                    lines: before_tests.lines().count(),
                    code: without_comments(before_tests),
                    path,
                    module,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The text before a `#[cfg(test)] mod …` block (test modules come last in a file).
fn without_tests(text: &str) -> &str {
    let mut from = 0;
    while let Some(at) = text[from..].find("#[cfg(test)]") {
        let at = from + at;
        let rest = text[at + "#[cfg(test)]".len()..].trim_start();
        let rest = rest.strip_prefix("pub ").unwrap_or(rest).trim_start();
        if rest.starts_with("mod ") {
            return &text[..at];
        }
        from = at + 1;
    }
    text
}

fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let line = rest.find("//");
        let block = rest.find("/*");
        match (line, block) {
            (Some(l), b) if b.is_none_or(|b| l < b) => {
                out.push_str(&rest[..l]);
                rest = &rest[l..];
                let end = rest.find('\n').unwrap_or(rest.len());
                rest = &rest[end..];
            }
            (_, Some(b)) => {
                out.push_str(&rest[..b]);
                rest = &rest[b + 2..];
                let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
                rest = &rest[end..];
            }
            _ => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// Every leaf path of the `use` declarations in `code` (a line that starts one, after any
/// visibility, up to its `;`).
fn use_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in code.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        let after_vis = match trimmed.strip_prefix("pub") {
            Some(rest) if rest.starts_with('(') => rest.find(')').map(|i| &rest[i + 1..]),
            Some(rest) => Some(rest),
            None => Some(trimmed),
        };
        let Some(tree) = after_vis
            .map(str::trim_start)
            .and_then(|t| t.strip_prefix("use "))
        else {
            continue;
        };
        let from = start + (line.len() - tree.len());
        if let Some(end) = code[from..].find(';') {
            expand(code[from..from + end].trim(), "", &mut out);
        }
    }
    out
}

fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let join = |p: &str| -> String {
        let p = p.trim().trim_end_matches(':');
        match (prefix.is_empty(), p.is_empty()) {
            (true, _) => p.to_string(),
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}::{p}"),
        }
    };
    let Some(open) = tree.find('{') else {
        let leaf = tree.split(" as ").next().unwrap_or(tree).trim();
        if leaf == "self" {
            out.push(prefix.to_string());
        } else {
            out.push(join(leaf));
        }
        return;
    };
    let head = join(&tree[..open]);
    let close = tree.rfind('}').filter(|&c| c > open).unwrap_or(tree.len());
    let body = &tree[open + 1..close];
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                expand(body[start..i].trim(), &head, out);
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = body[start..].trim();
    if !last.is_empty() {
        expand(last, &head, out);
    }
}

/// Inline `crate::a::b` (and `super::`, `self::`) paths outside `use` lines.
fn inline_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for head in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(head) {
            let at = from + at;
            from = at + head.len();
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let end = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| at + e);
            out.push(code[at..end].trim_end_matches(':').to_string());
        }
    }
    out
}

/// The module a path names (its longest prefix that is a module file), seen from `here`.
fn resolve(path: &str, here: &Module, modules: &BTreeSet<Module>) -> Option<Module> {
    let mut segments = path.split("::").filter(|s| !s.is_empty());
    let head = segments.next()?;
    let mut rest: Vec<&str> = segments.collect();
    let mut base: Module = match head {
        "crate" => Vec::new(),
        "self" => here.clone(),
        "super" => {
            let mut b = here.clone();
            b.pop();
            while rest.first() == Some(&"super") {
                b.pop();
                rest.remove(0);
            }
            b
        }
        child => {
            let mut c = here.clone();
            c.push(child.to_string());
            if !modules.contains(&c) {
                return None;
            }
            c
        }
    };
    base.extend(rest.iter().map(|s| s.to_string()));
    (0..=base.len())
        .rev()
        .map(|n| base[..n].to_vec())
        .find(|m| modules.contains(m))
}

/// file → files it imports (a module and its direct parent left out), with the paths seen.
fn imports(sources: &[Source]) -> BTreeMap<Module, BTreeMap<Module, BTreeSet<String>>> {
    let modules: BTreeSet<Module> = sources.iter().map(|s| s.module.clone()).collect();
    let mut edges: BTreeMap<Module, BTreeMap<Module, BTreeSet<String>>> = BTreeMap::new();
    for s in sources.iter().filter(|s| !s.module.is_empty()) {
        let mut paths = use_paths(&s.code);
        paths.extend(inline_paths(&s.code));
        for path in paths {
            let Some(target) = resolve(&path, &s.module, &modules) else {
                continue;
            };
            let parent_child = target.len() + 1 == s.module.len() && s.module.starts_with(&target)
                || s.module.len() + 1 == target.len() && target.starts_with(&s.module);
            if target == s.module || target.is_empty() || parent_child {
                continue;
            }
            edges
                .entry(s.module.clone())
                .or_default()
                .entry(target)
                .or_default()
                .insert(path);
        }
    }
    edges
}

/// Groups of modules that reach each other (Tarjan's strongly connected components).
fn circles(edges: &BTreeMap<Module, BTreeMap<Module, BTreeSet<String>>>) -> Vec<Vec<Module>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<Module, BTreeMap<Module, BTreeSet<String>>>,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit(w: &mut Walk<'_>, v: &Module) {
        let n = w.index.len();
        w.index.insert(v.clone(), n);
        w.low.insert(v.clone(), n);
        w.stack.push(v.clone());
        let next: Vec<Module> = w
            .edges
            .get(v)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for t in next {
            if !w.index.contains_key(&t) {
                visit(w, &t);
                let l = w.low[&t].min(w.low[v]);
                w.low.insert(v.clone(), l);
            } else if w.stack.contains(&t) {
                let l = w.index[&t].min(w.low[v]);
                w.low.insert(v.clone(), l);
            }
        }
        if w.low[v] == w.index[v] {
            let mut group = Vec::new();
            while let Some(t) = w.stack.pop() {
                let done = &t == v;
                group.push(t);
                if done {
                    break;
                }
            }
            if group.len() > 1 {
                w.out.push(group);
            }
        }
    }
    let mut w = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    let all: Vec<Module> = edges.keys().cloned().collect();
    for v in &all {
        if !w.index.contains_key(v) {
            visit(&mut w, v);
        }
    }
    w.out
}

fn name(m: &Module) -> String {
    m.join("::")
}

#[test]
fn no_source_files_import_each_other_in_a_circle() {
    let edges = imports(&sources());
    let found = circles(&edges);
    let mut report = String::new();
    for group in &found {
        report.push_str("circle:\n");
        for a in group {
            for (b, paths) in &edges[a] {
                if group.contains(b) {
                    let shown: Vec<&str> = paths.iter().map(String::as_str).take(3).collect();
                    report.push_str(&format!(
                        "  {} -> {}  ({})\n",
                        name(a),
                        name(b),
                        shown.join(", ")
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "modules import each other in a circle:\n{report}"
    );
}

#[test]
fn the_circle_check_sees_a_circle() {
    // The check itself: two files that use each other are found, a parent and child are not.
    let src = |path: &str, module: &[&str], code: &str| Source {
        path: PathBuf::from(path),
        module: module.iter().map(|s| s.to_string()).collect(),
        code: without_comments(code),
        lines: 0,
    };
    let files = [
        src("a.rs", &["a"], "use crate::b::{self, Thing};\n"),
        src(
            "b/mod.rs",
            &["b"],
            "// use crate::a;\nfn f() { crate::a::g(); }\n",
        ),
        src("b/c.rs", &["b", "c"], "use super::Thing;\n"),
        src("d.rs", &["d"], "use crate::b::c::X;\n"),
    ];
    let found = circles(&imports(&files));
    assert_eq!(found.len(), 1, "{found:?}");
    let mut group: Vec<String> = found[0].iter().map(name).collect();
    group.sort();
    assert_eq!(group, ["a", "b"]);
}

#[test]
fn the_configuration_imports_nothing_above_it() {
    // Config may use leaves only: modules that import nothing of the crate (`secret`, `redirect`).
    let edges = imports(&sources());
    let in_config = |m: &Module| m.first().is_some_and(|m| m == "config");
    let mut wrong = Vec::new();
    for (from, to) in edges.iter().filter(|(from, _)| in_config(from)) {
        for (target, paths) in to.iter().filter(|(t, _)| !in_config(t)) {
            if edges.get(target).is_some_and(|t| !t.is_empty()) {
                wrong.push(format!("{} -> {} ({paths:?})", name(from), name(target)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the configuration must be a leaf:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn routes_do_not_branch_on_a_providers_kind() {
    let found: Vec<String> = sources()
        .iter()
        .filter(|s| s.module.first().is_some_and(|m| m == "routes"))
        .filter(|s| s.code.contains("Flow::"))
        .map(|s| s.path.display().to_string())
        .collect();
    assert!(
        found.is_empty(),
        "routes match on a provider's flow; add a Provider method instead: {found:?}"
    );
}

#[test]
fn no_source_file_is_over_500_lines() {
    let long: Vec<String> = sources()
        .iter()
        .filter(|s| s.lines > 500)
        .map(|s| format!("{} ({} lines)", s.path.display(), s.lines))
        .collect();
    assert!(long.is_empty(), "split these by idea: {long:?}");
}

#[test]
fn only_routes_and_the_app_take_the_app_state() {
    let found: Vec<String> = sources()
        .iter()
        .filter(|s| {
            let top = s.module.first().map(String::as_str);
            !matches!(top, None | Some("routes") | Some("state") | Some("lib"))
        })
        .filter(|s| s.code.contains("AppState"))
        .map(|s| s.path.display().to_string())
        .collect();
    assert!(
        found.is_empty(),
        "below routes/, functions take the parts they use, not AppState: {found:?}"
    );
}

#[test]
fn only_the_http_side_speaks_in_http_errors() {
    // Domain modules return their own error types; error.rs maps each to a response, once.
    let edges = imports(&sources());
    let error = vec!["error".to_string()];
    let wrong: Vec<String> = edges
        .iter()
        .filter(|(from, to)| {
            to.contains_key(&error)
                && !matches!(
                    from.first().map(String::as_str),
                    Some("routes") | Some("state")
                )
        })
        .map(|(from, _)| name(from))
        .collect();
    assert!(
        wrong.is_empty(),
        "these return AppError; give them their own error type: {wrong:?}"
    );
}

/// The layers of docs/architecture.md, top first: a module may import only from layers below its
/// own. A new top-level module needs a place here (and in the drawing).
const LAYERS: &[&[&str]] = &[
    &["operator"],
    &["routes"],
    &["state"],
    &["error"],
    &["op"],
    &["session"],
    &["tokens"],
    &["providers"],
    &["audit"],
    &["store"],
    &["identity", "client_info", "limits"],
    &[
        "http_client",
        "listener",
        "templates",
        "device",
        "cors",
        "jose",
    ],
    &["request_id"],
    &["trace"],
    &["crypto", "clock", "metrics", "log_output"],
    &["config"],
    &["redirect", "secret"],
];

fn layer_of(m: &Module) -> Option<usize> {
    let top = m.first()?;
    LAYERS.iter().position(|l| l.contains(&top.as_str()))
}

#[test]
fn imports_point_down_the_layers() {
    let sources = sources();
    let unplaced: Vec<String> = sources
        .iter()
        .filter(|s| !s.module.is_empty() && layer_of(&s.module).is_none())
        .map(|s| name(&s.module))
        .collect();
    assert!(
        unplaced.is_empty(),
        "give these a layer in LAYERS and docs/architecture.md: {unplaced:?}"
    );
    let mut upward = Vec::new();
    for (from, to) in imports(&sources) {
        for (target, paths) in to {
            if from.first() == target.first() {
                continue;
            }
            if let (Some(a), Some(b)) = (layer_of(&from), layer_of(&target))
                && a >= b
            {
                upward.push(format!("{} -> {} ({paths:?})", name(&from), name(&target)));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that do not point down the layers:\n{}",
        upward.join("\n")
    );
}
