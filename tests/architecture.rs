//! Tidy checks: the architecture rules of docs/ARCHITECTURE.md, made executable. They read the
//! sources as text (no compiler) and fail with the file, the line and the rule broken:
//! - layering: a module imports only modules in lower layers of the table between the `layers`
//!   markers in docs/ARCHITECTURE.md, and every top-level module is in that table;
//! - purity: `protocol`, `store` and `num` use no sockets, threads, files or processes, nor `server`
//!   or `exec`;
//! - no import cycles between sibling modules inside a folder (`protocol/text` and `protocol/meta`
//!   may both use `protocol/ascii`, but not each other);
//! - every source file says what it owns (`//! Owns:`), and one over 600 lines says why
//!   (`Long because:`) in its header;
//! - the code map names every source file, and every file it names exists.
//!
//! Test code (`#[cfg(test)]` modules at the end of a file, `tests.rs` files) is not checked for
//! layering: tests may build whatever they need.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const LONG_FILE: usize = 600;

/// Every directory of product sources (the daemon and the bench tool's package).
const SOURCE_DIRS: &[&str] = &["src", "bench-tool/src"];

/// Modules that must stay pure, and what they may not name.
const PURE: &[&str] = &["protocol", "store", "num"];
const IMPURE_TOKENS: &[&str] = &[
    "mio::",
    "std::net",
    "std::thread",
    "thread::spawn",
    "std::fs",
    "std::process",
    "socket2",
    "signal_hook",
    "crate::server",
    "crate::exec",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One source file of the library or the daemon binary.
struct Source {
    /// Path relative to `src/`, with `/` separators (`store/shard.rs`).
    rel: String,
    /// Module path (`store::shard`); the crate root files are `lib` and `main`.
    module: Vec<String>,
    text: String,
}

fn sources() -> Vec<Source> {
    let mut out = Vec::new();
    let src = root().join("src");
    walk(&src, &mut |p| {
        let rel = p
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        if rel.starts_with("bin/") || !rel.ends_with(".rs") {
            return;
        }
        let mut parts: Vec<String> = rel
            .trim_end_matches(".rs")
            .split('/')
            .map(str::to_owned)
            .collect();
        if parts.last().map(String::as_str) == Some("mod") {
            parts.pop();
        }
        let text = fs::read_to_string(p).expect("read source");
        out.push(Source {
            rel,
            module: parts,
            text,
        });
    });
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, f);
        } else {
            f(&p);
        }
    }
}

/// The lines of non-test code, with comments removed, numbered from 1.
fn code_lines(s: &Source) -> Vec<(usize, String)> {
    if s.rel.ends_with("tests.rs") {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut in_block = false;
    for (i, line) in s.text.lines().enumerate() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let mut code = String::new();
        let mut rest = line;
        loop {
            if in_block {
                match rest.find("*/") {
                    Some(e) => {
                        rest = &rest[e + 2..];
                        in_block = false;
                    }
                    None => break,
                }
            } else {
                let lc = rest.find("//");
                let bc = rest.find("/*");
                match (lc, bc) {
                    (Some(l), Some(b)) if b < l => {
                        code.push_str(&rest[..b]);
                        rest = &rest[b + 2..];
                        in_block = true;
                    }
                    (Some(l), _) => {
                        code.push_str(&rest[..l]);
                        break;
                    }
                    (None, Some(b)) => {
                        code.push_str(&rest[..b]);
                        rest = &rest[b + 2..];
                        in_block = true;
                    }
                    (None, None) => {
                        code.push_str(rest);
                        break;
                    }
                }
            }
        }
        if !code.trim().is_empty() {
            out.push((i + 1, code));
        }
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every path in `line` that starts at an identifier boundary with `head` (`crate`, `super`,
/// `self`, or a child module's name), as its `::`-separated segments after `head`.
fn paths_from(line: &str, head: &str) -> Vec<Vec<String>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let pat = format!("{head}::");
    let mut from = 0;
    while let Some(at) = line[from..].find(&pat) {
        let start = from + at;
        from = start + pat.len();
        if start > 0 && (is_ident(b[start - 1]) || b[start - 1] == b':') {
            continue;
        }
        let mut segs = Vec::new();
        let mut i = from;
        loop {
            let s = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            if s == i {
                break;
            }
            segs.push(line[s..i].to_owned());
            if line[i..].starts_with("::") {
                i += 2;
            } else {
                break;
            }
        }
        // `use crate::{a, b::c}`: the names inside the braces.
        if segs.is_empty() && line[i..].starts_with('{') {
            let end = line[i..].find('}').map_or(line.len(), |e| i + e);
            for item in line[i + 1..end].split(',') {
                let item = item.trim();
                let name: String = item
                    .bytes()
                    .take_while(|&c| is_ident(c))
                    .map(char::from)
                    .collect();
                if !name.is_empty() {
                    let mut v: Vec<String> = vec![name];
                    if let Some(rest) = item.split("::").nth(1) {
                        let n2: String = rest
                            .bytes()
                            .take_while(|&c| is_ident(c))
                            .map(char::from)
                            .collect();
                        if !n2.is_empty() {
                            v.push(n2);
                        }
                    }
                    out.push(v);
                }
            }
            continue;
        }
        out.push(segs);
    }
    out
}

/// The modules a file's code names, resolved to known module paths (longest known prefix).
fn references(s: &Source, known: &BTreeSet<Vec<String>>) -> Vec<(usize, Vec<String>)> {
    let children: Vec<String> = known
        .iter()
        .filter(|m| m.len() == s.module.len() + 1 && m.starts_with(&s.module))
        .map(|m| m[m.len() - 1].clone())
        .collect();
    let resolve = |abs: Vec<String>| -> Option<Vec<String>> {
        (1..=abs.len())
            .rev()
            .map(|n| abs[..n].to_vec())
            .find(|p| known.contains(p))
    };
    let mut out = Vec::new();
    for (n, line) in code_lines(s) {
        for segs in paths_from(&line, "crate") {
            if let Some(m) = resolve(segs) {
                out.push((n, m));
            }
        }
        // `super::super::x` is found once per `super`; only the outermost match resolves.
        for segs in paths_from(&line, "super") {
            let mut base = s.module.clone();
            base.pop();
            let mut segs = segs.into_iter().peekable();
            while segs.peek().map(String::as_str) == Some("super") {
                segs.next();
                base.pop();
            }
            let mut abs = base;
            abs.extend(segs);
            if let Some(m) = resolve(abs) {
                out.push((n, m));
            }
        }
        for head in children.iter().map(String::as_str).chain(["self"]) {
            for segs in paths_from(&line, head) {
                let mut abs = s.module.clone();
                if head != "self" {
                    abs.push(head.to_owned());
                }
                abs.extend(segs);
                if let Some(m) = resolve(abs) {
                    out.push((n, m));
                }
            }
        }
    }
    out
}

/// The layer table of docs/ARCHITECTURE.md: top-level module → layer number.
fn layers() -> BTreeMap<String, u32> {
    let doc = fs::read_to_string(root().join("docs/ARCHITECTURE.md")).expect("read ARCHITECTURE");
    let start = doc
        .find("<!-- layers begin -->")
        .expect("docs/ARCHITECTURE.md has a <!-- layers begin --> marker");
    let end = doc
        .find("<!-- layers end -->")
        .expect("docs/ARCHITECTURE.md has a <!-- layers end --> marker");
    let mut out = BTreeMap::new();
    for row in doc[start..end].lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(Ok(layer)) = cells.get(1).map(|c| c.parse::<u32>()) else {
            continue;
        };
        for m in cells[2].split(',') {
            let m = m.trim().trim_matches('`');
            if !m.is_empty() {
                out.insert(m.to_owned(), layer);
            }
        }
    }
    assert!(
        !out.is_empty(),
        "the layer table in docs/ARCHITECTURE.md is empty"
    );
    out
}

fn known_modules(srcs: &[Source]) -> BTreeSet<Vec<String>> {
    srcs.iter()
        .filter(|s| s.module != ["lib"] && s.module != ["main"])
        .map(|s| s.module.clone())
        .collect()
}

fn top(s: &Source) -> &str {
    &s.module[0]
}

#[test]
fn layers_import_only_downwards() {
    let srcs = sources();
    let known = known_modules(&srcs);
    let layer = layers();
    let mut errors = Vec::new();
    for s in &srcs {
        let me = top(s);
        if me == "lib" || me == "main" {
            continue;
        }
        let Some(&mine) = layer.get(me) else {
            errors.push(format!(
                "src/{}: module `{me}` is not in the layer table of docs/ARCHITECTURE.md",
                s.rel
            ));
            continue;
        };
        for (n, m) in references(s, &known) {
            let other = &m[0];
            if other == me {
                continue;
            }
            match layer.get(other.as_str()) {
                Some(&theirs) if theirs < mine => {}
                Some(&theirs) => errors.push(format!(
                    "src/{}:{n}: `{me}` (layer {mine}) imports `{}` (layer {theirs}); \
                     only lower layers may be imported",
                    s.rel,
                    m.join("::")
                )),
                None => errors.push(format!(
                    "src/{}:{n}: `{}` is not in the layer table",
                    s.rel,
                    m.join("::")
                )),
            }
        }
    }
    assert!(errors.is_empty(), "layering:\n{}", errors.join("\n"));
}

#[test]
fn pure_modules_do_no_io() {
    let mut errors = Vec::new();
    for s in sources().iter().filter(|s| PURE.contains(&top(s))) {
        for (n, line) in code_lines(s) {
            for tok in IMPURE_TOKENS {
                if line.contains(tok) {
                    errors.push(format!("src/{}:{n}: `{tok}` in a pure module", s.rel));
                }
            }
            if top(s) == "store" && line.contains("crate::protocol") {
                errors.push(format!("src/{}:{n}: the store imports protocol", s.rel));
            }
        }
    }
    assert!(errors.is_empty(), "purity:\n{}", errors.join("\n"));
}

#[test]
fn no_cycles_between_sibling_modules() {
    let srcs = sources();
    let known = known_modules(&srcs);
    // parent → (child → children it imports), where an import from anywhere inside one child's
    // subtree into another child's subtree counts.
    let mut graph: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut lines: BTreeMap<(Vec<String>, String, String), String> = BTreeMap::new();
    for s in &srcs {
        for (n, m) in references(s, &known) {
            // The deepest common ancestor, and the two children of it on each side.
            let common = s
                .module
                .iter()
                .zip(m.iter())
                .take_while(|(a, b)| a == b)
                .count();
            if common >= s.module.len() || common >= m.len() {
                continue; // an ancestor or a descendant: not siblings
            }
            let parent = s.module[..common].to_vec();
            if parent.is_empty() {
                continue; // top level: the layer table rules there
            }
            let (from, to) = (s.module[common].clone(), m[common].clone());
            graph
                .entry(parent.clone())
                .or_default()
                .entry(from.clone())
                .or_default()
                .insert(to.clone());
            lines
                .entry((parent, from, to))
                .or_insert_with(|| format!("src/{}:{n}", s.rel));
        }
    }
    let mut errors = BTreeSet::new();
    for (parent, edges) in &graph {
        for (a, outs) in edges {
            for b in outs.iter().filter(|b| reaches(edges, b, a)) {
                let p = parent.join("::");
                let (x, y) = if a < b { (a, b) } else { (b, a) };
                let at = &lines[&(parent.clone(), a.clone(), b.clone())];
                errors.insert(format!(
                    "`{p}::{x}` and `{p}::{y}` are in an import cycle (one edge: {at})"
                ));
            }
        }
    }
    let errors: Vec<String> = errors.into_iter().collect();
    assert!(errors.is_empty(), "cycles:\n{}", errors.join("\n"));
}

/// Whether `to` is reachable from `from` in one parent's sibling graph.
fn reaches(edges: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(n) = stack.pop() {
        if n == to {
            return true;
        }
        if seen.insert(n.clone()) {
            if let Some(outs) = edges.get(&n) {
                stack.extend(outs.iter().cloned());
            }
        }
    }
    false
}

/// The leading `//!` block of a file.
fn header(text: &str) -> String {
    text.lines()
        .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_file_says_what_it_owns_and_long_files_say_why() {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for dir in SOURCE_DIRS {
        walk(&root().join(dir), &mut |p| files.push(p.to_path_buf()));
    }
    for p in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let text = fs::read_to_string(p).expect("read source");
        let rel = p.strip_prefix(root()).expect("under root").display();
        let head = header(&text);
        let is_test_file = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with("tests.rs"));
        if !is_test_file && !head.contains("Owns:") && !head.contains("ferrocache") {
            errors.push(format!("{rel}: no `//! Owns:` header"));
        }
        let n = text.lines().count();
        if n > LONG_FILE && !is_test_file && !head.contains("Long because:") {
            errors.push(format!(
                "{rel}: {n} lines (over {LONG_FILE}) and no `Long because:` in its header"
            ));
        }
    }
    assert!(errors.is_empty(), "headers:\n{}", errors.join("\n"));
}

#[test]
fn code_map_names_every_file() {
    let doc = fs::read_to_string(root().join("docs/ARCHITECTURE.md")).expect("read ARCHITECTURE");
    let map = doc
        .split("## Code map")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/ARCHITECTURE.md has a `## Code map` section");
    let mut named = BTreeSet::new();
    for cell in map.lines().filter(|l| l.starts_with("| `")) {
        let first = cell.split('|').nth(1).unwrap_or("");
        for name in first.split('`').skip(1).step_by(2) {
            named.insert(name.trim().to_owned());
        }
    }
    let mut errors = Vec::new();
    for s in sources() {
        if !named.contains(&s.rel) && s.rel != "lib.rs" {
            errors.push(format!("src/{} is not in the code map", s.rel));
        }
    }
    for name in &named {
        let p = root().join("src").join(name);
        let alt = root().join(name);
        if !p.exists() && !alt.exists() {
            errors.push(format!("the code map names `{name}`, which does not exist"));
        }
    }
    assert!(errors.is_empty(), "code map:\n{}", errors.join("\n"));
}
