//! The layering of `src/` (see "Where things live" in `src/lib.rs`), checked on the sources.
//!
//! Every file under `src/` gets its module path (`src/tls/verify.rs` → `tls::verify`) and a
//! layer (its top-level folder). Every reference to another module is collected: `crate::…`,
//! `super::…`, `self::…` paths and `use child::…` paths to a module's own children, in `use`
//! statements and in code alike (comments and strings are blanked first). A path is followed
//! to the file that defines the item, through `pub use` re-exports (`super::FlowId` in
//! `engine/error.rs` is a use of `engine/event.rs`, where `FlowId` is defined). Then:
//!
//! 1. no file uses a layer its own layer may not use (the table below, from the target tree);
//! 2. no files use each other, directly or round a longer loop (a cycle); a `mod.rs` counts as
//!    a file like any other, so a child that reaches back into its parent's items while the
//!    parent uses the child is a cycle too.
//!
//! Structural lines are not uses: `mod x;` declarations, and a parent's `pub use child::Name`
//! re-export, unless the parent's own code also uses `Name` (then it is a use of the child).
//! `src/lib.rs` is the facade and is exempt.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

#[path = "support/rust_source.rs"]
mod rust_source;
use rust_source::{blank, rust_files};

/// What each layer may use besides itself (the target tree of the architecture step).
const LAYERS: &[(&str, &[&str])] = &[
    ("sip", &[]),
    ("config", &["sip"]),
    ("tls", &["config", "sip"]),
    ("engine", &["tls", "config", "sip"]),
    ("os", &[]),
    ("driver", &["engine", "tls", "config", "sip", "os"]),
    ("ffi", &["driver", "os", "engine", "tls", "config", "sip"]),
];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Use {
    from: String,
    to: String,
    line: usize,
    what: String,
}

#[derive(Debug, Default)]
struct Analysis {
    /// Module path → file.
    files: BTreeMap<Vec<String>, String>,
    uses: Vec<Use>,
}

fn layer_of(file: &str) -> Option<&'static str> {
    let rest = file.strip_prefix("src/")?;
    let top = rest.split(['/', '.']).next()?;
    LAYERS
        .iter()
        .map(|(name, _)| *name)
        .find(|name| *name == top)
}

fn may_use(from: &str, to: &str) -> bool {
    from == to
        || LAYERS
            .iter()
            .any(|(name, below)| *name == from && below.contains(&to))
}

fn module_path(file: &str) -> Vec<String> {
    let rest = file.strip_prefix("src/").unwrap_or(file);
    let rest = rest.strip_suffix(".rs").unwrap_or(rest);
    let mut path: Vec<String> = rest.split('/').map(str::to_owned).collect();
    if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
        path.pop();
    }
    path
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    text: String,
    line: usize,
}

fn tokens(source: &str) -> Vec<Token> {
    let mut out = Vec::new();
    for (n, line) in blank(source).lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_alphanumeric() || c == '_' {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                out.push(Token { text, line: n + 1 });
            } else if c == ':' && chars.get(i + 1) == Some(&':') {
                out.push(Token {
                    text: "::".into(),
                    line: n + 1,
                });
                i += 2;
            } else {
                if !c.is_whitespace() {
                    out.push(Token {
                        text: c.to_string(),
                        line: n + 1,
                    });
                }
                i += 1;
            }
        }
    }
    out
}

fn is_ident(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// A `use` tree flattened: each leaf's path, its local name (None for a glob).
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Option<String>)>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        let Some(token) = tokens.get(i) else { return i };
        match token.text.as_str() {
            "::" => i += 1,
            "{" => {
                i += 1;
                loop {
                    match tokens.get(i).map(|t| t.text.as_str()) {
                        Some("}") => return i + 1,
                        Some(",") => i += 1,
                        None => return i,
                        _ => i = use_tree(tokens, i, &path, out),
                    }
                }
            }
            "*" => {
                out.push((path, None));
                return i + 1;
            }
            "self" if !path.is_empty() => {
                let name = path.last().cloned();
                i += 1;
                let alias = alias(tokens, &mut i);
                out.push((path, alias.or(name)));
                return i;
            }
            text if is_ident(text) => {
                path.push(text.to_owned());
                i += 1;
                if tokens.get(i).map(|t| t.text.as_str()) != Some("::") {
                    let alias = alias(tokens, &mut i);
                    let name = alias.unwrap_or_else(|| text.to_owned());
                    out.push((path, Some(name)));
                    return i;
                }
            }
            _ => return i,
        }
    }
}

fn alias(tokens: &[Token], i: &mut usize) -> Option<String> {
    if tokens.get(*i).map(|t| t.text.as_str()) == Some("as") {
        *i += 2;
        return tokens.get(*i - 1).map(|t| t.text.clone());
    }
    None
}

/// One leaf of a `use` statement.
struct UseLeaf {
    /// The module the statement is in.
    module: Vec<String>,
    line: usize,
    path: Vec<String>,
    /// The name it brings into scope (none for a glob).
    name: Option<String>,
    /// A `pub use` / `pub(…) use`: a re-export.
    is_pub: bool,
}

struct Parsed {
    file: String,
    uses: Vec<UseLeaf>,
    /// (module, line, path) of paths in code.
    paths: Vec<(Vec<String>, usize, Vec<String>)>,
    /// Identifiers used in code outside `use` statements: (module, name) → first line.
    idents: BTreeMap<(Vec<String>, String), usize>,
    inline_modules: Vec<Vec<String>>,
    children: BTreeSet<Vec<String>>,
}

/// Reads the use tree starting at `start` into `parsed.uses`; returns the index after it.
fn use_statement(
    tokens: &[Token],
    start: usize,
    module: &[String],
    line: usize,
    is_pub: bool,
    parsed: &mut Parsed,
) -> usize {
    let mut leaves = Vec::new();
    let next = use_tree(tokens, start, &[], &mut leaves);
    for (path, name) in leaves {
        parsed.uses.push(UseLeaf {
            module: module.to_vec(),
            line,
            path,
            name,
            is_pub,
        });
    }
    next
}

fn parse(file: &str, source: &str) -> Parsed {
    let tokens = tokens(source);
    let file_module = module_path(file);
    let mut parsed = Parsed {
        file: file.to_owned(),
        uses: Vec::new(),
        paths: Vec::new(),
        idents: BTreeMap::new(),
        inline_modules: Vec::new(),
        children: BTreeSet::new(),
    };
    // (module path, brace depth at which it closes)
    let mut stack: Vec<(Vec<String>, usize)> = vec![(file_module.clone(), 0)];
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let text = tokens[i].text.as_str();
        let module = stack.last().map(|m| m.0.clone()).unwrap_or_default();
        let next = |k: usize| tokens.get(i + k).map(|t| t.text.as_str());
        match text {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if stack.len() > 1 && stack.last().is_some_and(|m| m.1 == depth) {
                    stack.pop();
                }
            }
            "mod" if next(1).is_some_and(is_ident) && matches!(next(2), Some("{" | ";")) => {
                let mut child = module.clone();
                child.push(tokens[i + 1].text.clone());
                if next(2) == Some("{") {
                    parsed.inline_modules.push(child.clone());
                    stack.push((child, depth));
                } else {
                    parsed.children.insert(child);
                }
                i += 2;
                continue;
            }
            "pub" if next(1) == Some("(") => {
                // pub(crate), pub(super), pub(in path): not a use.
                let close = tokens[i..].iter().position(|t| t.text == ")").unwrap_or(0);
                let is_pub_use = tokens.get(i + close + 1).is_some_and(|t| t.text == "use");
                if is_pub_use {
                    let line = tokens[i].line;
                    i = use_statement(&tokens, i + close + 2, &module, line, true, &mut parsed);
                    continue;
                }
                i += close + 1;
                continue;
            }
            "use" => {
                let is_pub = i > 0 && tokens[i - 1].text == "pub";
                let line = tokens[i].line;
                i = use_statement(&tokens, i + 1, &module, line, is_pub, &mut parsed);
                continue;
            }
            t if is_ident(t) => {
                let after_colons = i > 0 && tokens[i - 1].text == "::";
                if !after_colons && next(1) == Some("::") {
                    let line = tokens[i].line;
                    let mut path = vec![t.to_owned()];
                    let mut j = i + 1;
                    while tokens.get(j).is_some_and(|t| t.text == "::")
                        && tokens.get(j + 1).is_some_and(|t| is_ident(&t.text))
                    {
                        path.push(tokens[j + 1].text.clone());
                        j += 2;
                    }
                    parsed.paths.push((module.clone(), line, path));
                    i = j;
                    continue;
                }
                if !after_colons {
                    parsed
                        .idents
                        .entry((module.clone(), t.to_owned()))
                        .or_insert(tokens[i].line);
                }
            }
            _ => {}
        }
        i += 1;
    }
    parsed
}

impl Analysis {
    fn new(sources: &[(String, String)]) -> Self {
        let parsed: Vec<Parsed> = sources.iter().map(|(f, s)| parse(f, s)).collect();
        let mut analysis = Analysis::default();
        // Every module (file or inline) → its file.
        let mut modules: BTreeMap<Vec<String>, String> = BTreeMap::new();
        for p in &parsed {
            modules.insert(module_path(&p.file), p.file.clone());
            analysis.files.insert(module_path(&p.file), p.file.clone());
            for inline in &p.inline_modules {
                modules.insert(inline.clone(), p.file.clone());
            }
        }
        // Re-exports: (module, name) → the absolute path it stands for.
        let mut reexports: BTreeMap<(Vec<String>, String), Vec<String>> = BTreeMap::new();
        for p in &parsed {
            for UseLeaf {
                module,
                path,
                name,
                is_pub,
                ..
            } in &p.uses
            {
                if let (true, Some(name), Some(target)) =
                    (*is_pub, name, absolute(path, module, &modules))
                {
                    reexports.insert((module.clone(), name.clone()), target);
                }
            }
        }
        let resolve = |path: &[String]| -> Option<(String, String)> {
            let mut path = path.to_vec();
            for _ in 0..8 {
                let mut module = Vec::new();
                let mut k = 0;
                while k < path.len()
                    && modules.contains_key(&[module.clone(), vec![path[k].clone()]].concat())
                {
                    module.push(path[k].clone());
                    k += 1;
                }
                let Some(item) = path.get(k) else {
                    return modules.get(&module).map(|f| (f.clone(), String::new()));
                };
                match reexports.get(&(module.clone(), item.clone())) {
                    Some(target) if *target != path => path = target.clone(),
                    _ => return modules.get(&module).map(|f| (f.clone(), item.clone())),
                }
            }
            None
        };
        for p in &parsed {
            if p.file == "src/lib.rs" {
                continue; // the facade
            }
            let mut add = |line: usize, path: &[String], module: &[String], what: String| {
                let Some(abs) = absolute(path, module, &modules) else {
                    return;
                };
                if let Some((to, _)) = resolve(&abs) {
                    if to != p.file {
                        analysis.uses.push(Use {
                            from: p.file.clone(),
                            to,
                            line,
                            what,
                        });
                    }
                }
            };
            for UseLeaf {
                module,
                line,
                path,
                name,
                is_pub,
            } in &p.uses
            {
                let abs = absolute(path, module, &modules);
                let reexport_of_descendant = *is_pub
                    && abs
                        .as_ref()
                        .is_some_and(|a| a.len() > module.len() + 1 && a.starts_with(module));
                if reexport_of_descendant {
                    // Structural, unless this module's own code uses the name too.
                    if let Some(used_at) = name
                        .as_ref()
                        .and_then(|n| p.idents.get(&(module.clone(), n.clone())))
                    {
                        add(
                            *used_at,
                            path,
                            module,
                            format!("{} (re-exported, used here)", path.join("::")),
                        );
                    }
                    continue;
                }
                add(*line, path, module, path.join("::"));
            }
            for (module, line, path) in &p.paths {
                add(*line, path, module, path.join("::"));
            }
        }
        analysis.uses.sort();
        analysis
            .uses
            .dedup_by(|a, b| a.from == b.from && a.to == b.to && a.line == b.line);
        analysis
    }

    fn layer_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for file in self.files.values() {
            if file != "src/lib.rs" && layer_of(file).is_none() {
                out.push(format!("{file}: in no layer (add its folder to LAYERS)"));
            }
        }
        for u in &self.uses {
            let (Some(from), Some(to)) = (layer_of(&u.from), layer_of(&u.to)) else {
                continue;
            };
            if !may_use(from, to) {
                out.push(format!(
                    "{}:{}: layer {from} uses layer {to}: {} ({})",
                    u.from, u.line, u.what, u.to
                ));
            }
        }
        out
    }

    /// Strongly connected components of more than one file, with the uses inside each.
    fn cycles(&self) -> Vec<String> {
        let uses: Vec<&Use> = self.uses.iter().collect();
        let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for u in &uses {
            graph.entry(&u.from).or_default().insert(&u.to);
        }
        let nodes: Vec<&str> = self.files.values().map(String::as_str).collect();
        let reach = |start: &str| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![start];
            while let Some(n) = todo.pop() {
                for &m in graph.get(n).into_iter().flatten() {
                    if seen.insert(m) {
                        todo.push(m);
                    }
                }
            }
            seen
        };
        let reachable: BTreeMap<&str, BTreeSet<&str>> =
            nodes.iter().map(|&n| (n, reach(n))).collect();
        let mut done = BTreeSet::new();
        let mut out = Vec::new();
        for &n in &nodes {
            if done.contains(n) || !reachable[n].contains(n) {
                continue;
            }
            let component: BTreeSet<&str> = nodes
                .iter()
                .copied()
                .filter(|&m| m == n || (reachable[n].contains(m) && reachable[m].contains(n)))
                .collect();
            done.extend(component.iter().copied());
            let mut text = format!(
                "cycle between {}:",
                component.iter().copied().collect::<Vec<_>>().join(", ")
            );
            for u in uses.iter().filter(|u| {
                component.contains(u.from.as_str()) && component.contains(u.to.as_str())
            }) {
                let _ = write!(
                    text,
                    "\n    {}:{} uses {} ({})",
                    u.from, u.line, u.to, u.what
                );
            }
            out.push(text);
        }
        out
    }
}

/// The absolute module path `path` names from inside `module`, if it names a crate module.
fn absolute(
    path: &[String],
    module: &[String],
    modules: &BTreeMap<Vec<String>, String>,
) -> Option<Vec<String>> {
    let first = path.first()?.as_str();
    let (mut base, rest): (Vec<String>, &[String]) = match first {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (module.to_vec(), &path[1..]),
        "super" => {
            let mut base = module.to_vec();
            let mut k = 0;
            while path.get(k).map(String::as_str) == Some("super") {
                base.pop()?;
                k += 1;
            }
            (base, &path[k..])
        }
        // A module's own child, named without a prefix.
        child if modules.contains_key(&[module.to_vec(), vec![child.to_owned()]].concat()) => {
            (module.to_vec(), path)
        }
        _ => return None,
    };
    base.extend(rest.iter().cloned());
    Some(base)
}

fn sources_under(dir: &Path) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    rust_files(dir)
        .into_iter()
        .map(|path| {
            let name = path
                .strip_prefix(root)
                .expect("under the crate")
                .to_string_lossy()
                .replace('\\', "/");
            let source = std::fs::read_to_string(&path).expect("readable source");
            (name, source)
        })
        .collect()
}

fn crate_sources() -> Analysis {
    Analysis::new(&sources_under(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
    ))
}

#[test]
fn no_module_uses_a_higher_layer() {
    let analysis = crate_sources();
    println!(
        "{} files, {} uses between files",
        analysis.files.len(),
        analysis.uses.len()
    );
    let violations = analysis.layer_violations();
    assert!(
        violations.is_empty(),
        "modules using a layer above their own:\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_two_files_use_each_other() {
    let cycles = crate_sources().cycles();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The checker on a small tree: it finds what it is meant to find.
#[test]
fn the_checker_sees_upward_uses_cycles_and_reexport_paths() {
    let tree = |files: &[(&str, &str)]| {
        Analysis::new(
            &files
                .iter()
                .map(|(f, s)| (f.to_string(), s.to_string()))
                .collect::<Vec<_>>(),
        )
    };
    let base = [
        ("src/lib.rs", "mod sip; mod tls; mod engine;"),
        ("src/sip/mod.rs", "pub(crate) mod uri;\npub fn frame() {}"),
        ("src/sip/uri.rs", "pub fn parse() {}"),
        ("src/tls/mod.rs", "mod failure;\npub use failure::Failure;\nuse crate::sip::uri;"),
        ("src/tls/failure.rs", "// crate::engine::Ue in a comment\npub struct Failure;\nconst S: &str = \"crate::engine\";"),
        ("src/engine/mod.rs", "mod event;\npub use event::Event;\nuse crate::tls::Failure;\nfn f(e: Event) {}"),
        ("src/engine/event.rs", "pub struct Event;"),
    ];
    let clean = tree(&base);
    assert_eq!(clean.layer_violations(), Vec::<String>::new());
    assert_eq!(clean.cycles(), Vec::<String>::new());
    // The re-export is followed to the defining file, and a used re-export is a use.
    assert!(clean
        .uses
        .iter()
        .any(|u| u.from == "src/engine/mod.rs" && u.to == "src/tls/failure.rs"));
    assert!(clean
        .uses
        .iter()
        .any(|u| u.from == "src/engine/mod.rs" && u.to == "src/engine/event.rs" && u.line == 4));

    let mut upward = base;
    upward[2] = (
        "src/sip/uri.rs",
        "pub fn parse() {}\nfn g() { let _ = crate::engine::Event; }",
    );
    let found = tree(&upward).layer_violations();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("src/sip/uri.rs:2: layer sip uses layer engine"),
        "{found:?}"
    );

    let mut cycle = base;
    cycle[6] = ("src/engine/event.rs", "use super::f;\npub struct Event;");
    let found = tree(&cycle).cycles();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("src/engine/event.rs:1 uses src/engine/mod.rs"),
        "{found:?}"
    );
    assert!(
        found[0].contains("src/engine/mod.rs:4 uses src/engine/event.rs"),
        "{found:?}"
    );
}
