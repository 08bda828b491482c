//! Architecture guard for the hexagonal layers of `src/`: the domain reads as the spec, so it
//! must not know wire formats, adapters or wiring; protocol (the wire formats) depends only on the
//! domain; the inbound and outbound adapters hang off the domain and never reach into each other;
//! and no layer has import cycles between its files.
//!
//! The test reads the sources with a small hand-written scanner (std only: it is a lint, not a
//! compiler). It strips comments, strings and char literals, then collects every path that starts
//! with `crate::`, `super::`, `self::` or with the name of a child module file (`handlers::docs::x`
//! in `http/mod.rs`), including `use` trees with braces, and resolves each path to the deepest
//! module file that exists on disk, following `use` imports of the module it lands in
//! (`pub use child::Name`, `use super::{A, B}`) to the file that defines the name.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;

const LAYERS: [&str; 4] = ["domain", "protocol", "inbound", "outbound"];

// ------------------------------------------------------------------------------------------------
// Stripping comments and literals
// ------------------------------------------------------------------------------------------------

/// The source with comments, string literals (plain, byte, C and raw) and char literals blanked
/// out; newlines are kept, so line numbers stay right. Lifetimes and labels are kept.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let is_ident = |ch: char| ch == '_' || ch.is_alphanumeric();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if ch == '"' {
            blank(&mut out, ch);
            i += 1;
            while i < c.len() {
                let d = c[i];
                blank(&mut out, d);
                i += 1;
                if d == '\\' {
                    if i < c.len() {
                        blank(&mut out, c[i]);
                        i += 1;
                    }
                } else if d == '"' {
                    break;
                }
            }
        } else if ch == '\'' {
            if next == Some('\\') {
                // '\n', '\'', '\u{1F600}', b'\x7f'
                for _ in 0..3 {
                    if i < c.len() {
                        blank(&mut out, c[i]);
                        i += 1;
                    }
                }
                while i < c.len() && c[i] != '\'' && c[i] != '\n' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() && c[i] == '\'' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            } else if c.get(i + 2) == Some(&'\'') {
                // 'x', '"', '{'
                for _ in 0..3 {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            } else {
                // a lifetime or a label
                out.push(ch);
                i += 1;
            }
        } else if is_ident(ch) {
            // Only at the start of an identifier can a raw string begin: r"..", r#".."#, br"..", cr"..".
            let mut j = i;
            while j < c.len() && (c[j] == 'b' || c[j] == 'c') && j < i + 1 {
                j += 1;
            }
            let raw = if c.get(j) == Some(&'r') {
                let mut k = j + 1;
                while c.get(k) == Some(&'#') {
                    k += 1;
                }
                (c.get(k) == Some(&'"')).then_some((k, k - (j + 1)))
            } else {
                None
            };
            if let Some((quote, hashes)) = raw {
                while i <= quote {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                while i < c.len() {
                    if c[i] == '"' && (1..=hashes).all(|h| c.get(i + h) == Some(&'#')) {
                        for _ in 0..=hashes {
                            blank(&mut out, c[i]);
                            i += 1;
                        }
                        break;
                    }
                    blank(&mut out, c[i]);
                    i += 1;
                }
            } else {
                while i < c.len() && is_ident(c[i]) {
                    out.push(c[i]);
                    i += 1;
                }
            }
        } else {
            out.push(ch);
            i += 1;
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Tokens
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Colons,
    Punct(char),
    /// A number.
    Other,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

fn tokenize(stripped: &str) -> Vec<Token> {
    let c: Vec<char> = stripped.chars().collect();
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '_' || ch.is_alphabetic() {
            let start = i;
            while i < c.len() && (c[i] == '_' || c[i].is_alphanumeric()) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            toks.push(Token {
                tok: Tok::Ident(word),
                line,
            });
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i] == '_' || c[i].is_alphanumeric()) {
                i += 1;
            }
            toks.push(Token {
                tok: Tok::Other,
                line,
            });
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            toks.push(Token {
                tok: Tok::Colons,
                line,
            });
            i += 2;
        } else {
            toks.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    toks
}

fn ident(toks: &[Token], i: usize) -> Option<&str> {
    match toks.get(i).map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

fn is(toks: &[Token], i: usize, tok: &Tok) -> bool {
    toks.get(i).is_some_and(|t| &t.tok == tok)
}

fn punct(toks: &[Token], i: usize, ch: char) -> bool {
    is(toks, i, &Tok::Punct(ch))
}

const KEYWORDS: [&str; 38] = [
    "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern", "false",
    "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "static", "struct", "trait", "true", "type", "unsafe", "use", "where", "while",
    "Self", "crate", "self", "super",
];

// ------------------------------------------------------------------------------------------------
// Scanning one file
// ------------------------------------------------------------------------------------------------

/// One reference from a file to a module path of the crate.
#[derive(Clone, Debug)]
struct Ref {
    line: usize,
    /// The path as written (a `use` tree leaf is written out in full): `super::chat::session_id`.
    text: String,
    /// The same path from the crate root, `super`s and `self`s resolved; `None` when it climbs
    /// above the crate root.
    abs: Option<Vec<String>>,
    /// Inside a `#[cfg(test)] mod x { ... }` block.
    in_test_mod: bool,
    /// A leaf of a `pub use` / `pub(crate) use` at file scope: a re-export.
    reexport: bool,
}

#[derive(Debug, Default)]
struct Scan {
    refs: Vec<Ref>,
    /// Child module files this file declares (`mod x;`, at file scope).
    children: Vec<String>,
    /// Those declared `#[cfg(test)] mod x;`: test code.
    test_children: Vec<String>,
    /// Names a file-scope `use` binds in this module (any visibility: descendants see private
    /// imports too), and the crate path each stands for.
    imports: Vec<(String, Vec<String>)>,
}

/// Whether the attributes right before token `i` (skipping a visibility) include `#[cfg(test)]`
/// (or `#[cfg(all(test, ...))]`; not `any(test, ...)` nor `not(test)`, which also build outside
/// tests).
fn has_cfg_test_before(toks: &[Token], i: usize) -> bool {
    let mut j = i;
    // skip `pub`, `pub(crate)`, `pub(in a::b)`
    if j > 0 && punct(toks, j - 1, ')') {
        let mut k = j - 1;
        while k > 0 && !punct(toks, k, '(') {
            k -= 1;
        }
        if k > 0 && ident(toks, k - 1) == Some("pub") {
            j = k - 1;
        }
    } else if j > 0 && ident(toks, j - 1) == Some("pub") {
        j -= 1;
    }
    while j > 0 && punct(toks, j - 1, ']') {
        let close = j - 1;
        let mut k = close;
        let mut depth = 0;
        loop {
            if punct(toks, k, ']') {
                depth += 1;
            } else if punct(toks, k, '[') {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            if k == 0 {
                return false;
            }
            k -= 1;
        }
        let attr = &toks[k + 1..close];
        let words: Vec<&str> = attr
            .iter()
            .filter_map(|t| match &t.tok {
                Tok::Ident(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        if words.first() == Some(&"cfg")
            && words.contains(&"test")
            && !words.contains(&"not")
            && !words.contains(&"any")
        {
            return true;
        }
        // `#[...]`: step over the `#` too
        if k > 0 && punct(toks, k - 1, '#') {
            j = k - 1;
        } else {
            return false;
        }
    }
    false
}

/// Whether the `use` at token `i` has a visibility (`pub`, `pub(crate)`, `pub(super)`, ...).
fn use_is_pub(toks: &[Token], i: usize) -> bool {
    if i > 0 && ident(toks, i - 1) == Some("pub") {
        return true;
    }
    if i > 0 && punct(toks, i - 1, ')') {
        let mut k = i - 1;
        while k > 0 && !punct(toks, k, '(') {
            k -= 1;
        }
        return k > 0 && ident(toks, k - 1) == Some("pub");
    }
    false
}

#[derive(Debug)]
struct UseLeaf {
    segs: Vec<String>,
    line: usize,
    /// The name the leaf binds; `None` for a glob.
    name: Option<String>,
    glob: bool,
}

/// Parses one use tree from `i` (before `end`), appending its leaves; returns the next index.
fn use_tree(
    toks: &[Token],
    mut i: usize,
    end: usize,
    prefix: &[String],
    out: &mut Vec<UseLeaf>,
) -> usize {
    let mut segs = prefix.to_vec();
    if i < end && is(toks, i, &Tok::Colons) {
        if segs.is_empty() {
            segs.push("::".into()); // `use ::extern_crate::x`
        }
        i += 1;
    }
    while i < end {
        match &toks[i].tok {
            Tok::Ident(s) => {
                segs.push(s.clone());
                let line = toks[i].line;
                i += 1;
                if i < end && is(toks, i, &Tok::Colons) {
                    i += 1;
                    continue;
                }
                let mut name = segs.last().cloned();
                if i + 1 < end && ident(toks, i) == Some("as") {
                    name = ident(toks, i + 1).map(String::from);
                    i += 2;
                }
                if segs.last().map(String::as_str) == Some("self") {
                    segs.pop();
                    if name.as_deref() == Some("self") {
                        name = segs.last().cloned();
                    }
                }
                out.push(UseLeaf {
                    segs,
                    line,
                    name,
                    glob: false,
                });
                return i;
            }
            Tok::Punct('*') => {
                out.push(UseLeaf {
                    segs,
                    line: toks[i].line,
                    name: None,
                    glob: true,
                });
                return i + 1;
            }
            Tok::Punct('{') => {
                i += 1;
                while i < end {
                    if punct(toks, i, '}') {
                        return i + 1;
                    }
                    if punct(toks, i, ',') {
                        i += 1;
                        continue;
                    }
                    let before = i;
                    i = use_tree(toks, i, end, &segs, out);
                    if i == before {
                        i += 1;
                    }
                }
                return i;
            }
            _ => return i,
        }
    }
    i
}

/// The path `segs` (written in module `scope`) from the crate root, or `None` when it climbs
/// above the root.
fn absolute(scope: &[String], segs: &[String]) -> Option<Vec<String>> {
    let mut k = 0;
    let mut base: Vec<String> = match segs.first().map(String::as_str) {
        Some("crate") => {
            k = 1;
            Vec::new()
        }
        _ => scope.to_vec(),
    };
    while k < segs.len() && (segs[k] == "self" || segs[k] == "super") {
        if segs[k] == "super" {
            base.pop()?;
        }
        k += 1;
    }
    base.extend(segs[k..].iter().cloned());
    Some(base)
}

/// Every crate-internal path in one file. `module` is the file's module path (`["domain",
/// "ports"]`); `is_module` says whether a module path has a file on disk (to recognise paths that
/// start with a child module's name).
fn scan(src: &str, module: &[String], is_module: &dyn Fn(&[String]) -> bool) -> Scan {
    let toks = tokenize(&strip(src));
    let mut scan = Scan::default();
    let mut depth = 0usize;
    // inline modules: (name, brace depth inside it, is a #[cfg(test)] module)
    let mut inline: Vec<(String, usize, bool)> = Vec::new();
    let scope_of = |inline: &[(String, usize, bool)]| -> Vec<String> {
        let mut s = module.to_vec();
        s.extend(inline.iter().map(|m| m.0.clone()));
        s
    };
    let mut i = 0;
    while i < toks.len() {
        let in_test_mod = inline.iter().any(|m| m.2);
        match &toks[i].tok {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|m| m.1 == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Ident(w) if w == "mod" && ident(&toks, i + 1).is_some() => {
                let name = ident(&toks, i + 1).unwrap().to_string();
                let test = has_cfg_test_before(&toks, i);
                if punct(&toks, i + 2, '{') {
                    depth += 1;
                    inline.push((name, depth, test));
                    i += 3;
                } else {
                    // `mod x;`: a declaration, not a reference
                    if inline.is_empty() {
                        if test {
                            scan.test_children.push(name.clone());
                        }
                        scan.children.push(name);
                    }
                    i += 2;
                }
            }
            Tok::Ident(w) if w == "use" => {
                let end = (i..toks.len())
                    .find(|&k| punct(&toks, k, ';'))
                    .unwrap_or(toks.len());
                let vis = use_is_pub(&toks, i);
                let file_scope = depth == 0 && inline.is_empty();
                let mut leaves = Vec::new();
                let mut k = i + 1;
                while k < end {
                    let before = k;
                    k = use_tree(&toks, k, end, &[], &mut leaves);
                    if k == before {
                        k += 1;
                    }
                }
                let scope = scope_of(&inline);
                for leaf in leaves {
                    let Some(first) = leaf.segs.first() else {
                        continue;
                    };
                    let mut child = scope.clone();
                    child.push(first.clone());
                    let internal = matches!(first.as_str(), "crate" | "self" | "super")
                        || (!KEYWORDS.contains(&first.as_str()) && is_module(&child));
                    if !internal {
                        continue;
                    }
                    let abs = absolute(&scope, &leaf.segs);
                    let mut text = leaf.segs.join("::");
                    if leaf.glob {
                        text.push_str("::*");
                    }
                    if file_scope
                        && let (Some(name), Some(abs)) = (&leaf.name, &abs)
                        && name != "_"
                    {
                        scan.imports.push((name.clone(), abs.clone()));
                    }
                    scan.refs.push(Ref {
                        line: leaf.line,
                        text,
                        abs,
                        in_test_mod,
                        reexport: vis && file_scope,
                    });
                }
                i = end + 1;
            }
            Tok::Ident(first)
                if is(&toks, i + 1, &Tok::Colons) && ident(&toks, i + 2).is_some() =>
            {
                let after_colons = i > 0 && is(&toks, i - 1, &Tok::Colons);
                // `pub(in crate::a)` names a visibility, not an item
                let visibility = i >= 3
                    && ident(&toks, i - 1) == Some("in")
                    && punct(&toks, i - 2, '(')
                    && ident(&toks, i - 3) == Some("pub");
                let scope = scope_of(&inline);
                let mut child = scope.clone();
                child.push(first.clone());
                let starts = matches!(first.as_str(), "crate" | "self" | "super")
                    || (!KEYWORDS.contains(&first.as_str()) && is_module(&child));
                if after_colons || visibility || !starts {
                    i += 1;
                    continue;
                }
                let line = toks[i].line;
                let mut segs = vec![first.clone()];
                let mut j = i + 1;
                while is(&toks, j, &Tok::Colons) {
                    match ident(&toks, j + 1) {
                        Some(s) => segs.push(s.to_string()),
                        None => break,
                    }
                    j += 2;
                }
                scan.refs.push(Ref {
                    line,
                    text: segs.join("::"),
                    abs: absolute(&scope, &segs),
                    in_test_mod,
                    reexport: false,
                });
                i = j;
            }
            _ => i += 1,
        }
    }
    scan
}

// ------------------------------------------------------------------------------------------------
// The crate: files, module paths, resolution, edges
// ------------------------------------------------------------------------------------------------

struct SourceFile {
    /// `src/domain/ports.rs`
    path: String,
    /// `["domain", "ports"]`
    module: Vec<String>,
    scan: Scan,
    /// A file named `tests.rs`, or declared `#[cfg(test)] mod x;` by its parent: test wiring.
    is_test: bool,
    /// Reached from `lib.rs` through `mod` declarations. A file on disk that no `mod` declares is
    /// not compiled (a leftover during a refactor): still checked, but marked in the messages.
    declared: bool,
}

struct Crate {
    files: Vec<SourceFile>,
    by_module: HashMap<Vec<String>, usize>,
    /// (file, name) -> the crate path a file-scope `use` of that file binds the name to.
    imports: HashMap<(usize, String), Vec<String>>,
}

/// An edge: file `from` refers to an item of file `to` (`from != to`).
struct Edge<'a> {
    from: usize,
    to: usize,
    r: &'a Ref,
}

/// The module path of a library file, or `None` for `main.rs` and `bin/` (separate crate roots,
/// whose `crate::` is not the library's) and non-Rust files.
fn module_of(path: &str) -> Option<Vec<String>> {
    let rel = path.strip_prefix("src/")?.strip_suffix(".rs")?;
    if rel == "main" || rel.starts_with("bin/") {
        return None;
    }
    if rel == "lib" {
        return Some(Vec::new());
    }
    let mut segs: Vec<String> = rel.split('/').map(String::from).collect();
    if segs.last().map(String::as_str) == Some("mod") {
        segs.pop();
    }
    Some(segs)
}

impl Crate {
    /// `sources`: (path such as `src/domain/ports.rs`, text).
    fn from_sources(sources: Vec<(String, String)>) -> Crate {
        let mut sources: Vec<(String, Vec<String>, String)> = sources
            .into_iter()
            .filter_map(|(p, s)| module_of(&p).map(|m| (p, m, s)))
            .collect();
        sources.sort_by(|a, b| a.0.cmp(&b.0));
        let by_module: HashMap<Vec<String>, usize> = sources
            .iter()
            .enumerate()
            .map(|(i, s)| (s.1.clone(), i))
            .collect();
        let is_module = |m: &[String]| by_module.contains_key(m);
        let mut files: Vec<SourceFile> = sources
            .into_iter()
            .map(|(path, module, src)| {
                let scan = scan(&src, &module, &is_module);
                let declared = module.is_empty();
                SourceFile {
                    is_test: path.ends_with("/tests.rs"),
                    path,
                    module,
                    scan,
                    declared,
                }
            })
            .collect();
        let mut by_depth: Vec<usize> = (0..files.len()).collect();
        by_depth.sort_by_key(|&i| files[i].module.len());
        for i in by_depth {
            let Some((last, parent)) = files[i].module.split_last() else {
                continue;
            };
            let Some(&p) = by_module.get(parent) else {
                continue;
            };
            let test = files[p].scan.test_children.contains(last);
            let declared = files[p].declared && files[p].scan.children.contains(last);
            files[i].is_test |= test;
            files[i].declared = declared;
        }
        let mut imports = HashMap::new();
        for (i, f) in files.iter().enumerate() {
            for (name, abs) in &f.scan.imports {
                imports.insert((i, name.clone()), abs.clone());
            }
        }
        Crate {
            files,
            by_module,
            imports,
        }
    }

    fn load(root: &Path) -> Crate {
        fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for p in entries {
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    out.push(p);
                }
            }
        }
        let mut paths = Vec::new();
        walk(&root.join("src"), &mut paths);
        let sources = paths
            .into_iter()
            .filter_map(|p| {
                // a file may vanish while another engineer moves things around
                let text = std::fs::read_to_string(&p).ok()?;
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                Some((rel, text))
            })
            .collect();
        Crate::from_sources(sources)
    }

    /// The file of the item `abs` names: the deepest module file along the path; when the next
    /// segment is a name that module imports (`pub use child::Name`, `use super::Name`), the
    /// file of what it imports instead.
    fn resolve(&self, abs: &[String]) -> Option<usize> {
        self.resolve_at(abs, 0)
    }

    fn resolve_at(&self, abs: &[String], hops: usize) -> Option<usize> {
        let mut n = 0;
        while n < abs.len() && self.by_module.contains_key(&abs[..=n]) {
            n += 1;
        }
        let file = *self.by_module.get(&abs[..n])?;
        if n < abs.len()
            && hops < 8
            && let Some(target) = self.imports.get(&(file, abs[n].clone()))
        {
            let mut next = target.clone();
            next.extend(abs[n + 1..].iter().cloned());
            if next != abs
                && let Some(t) = self.resolve_at(&next, hops + 1)
            {
                return Some(t);
            }
        }
        Some(file)
    }

    /// Every reference from one file to another, test code included.
    fn edges(&self) -> Vec<Edge<'_>> {
        let mut edges = Vec::new();
        for (from, f) in self.files.iter().enumerate() {
            for r in &f.scan.refs {
                let Some(abs) = &r.abs else { continue };
                if let Some(to) = self.resolve(abs)
                    && to != from
                {
                    edges.push(Edge { from, to, r });
                }
            }
        }
        edges
    }

    fn layer(&self, file: usize) -> Option<&str> {
        let top = self.files[file].module.first()?;
        LAYERS.iter().copied().find(|l| l == top)
    }
}

fn crate_root() -> &'static Path {
    Path::new(option_env!("CARGO_MANIFEST_DIR").unwrap_or("."))
}

fn load_crate() -> Crate {
    let krate = Crate::load(crate_root());
    assert!(
        krate.files.iter().any(|f| f.module.is_empty()),
        "src/lib.rs not found under {}: run from the crate root",
        crate_root().display()
    );
    krate
}

// ------------------------------------------------------------------------------------------------
// The rules
// ------------------------------------------------------------------------------------------------

/// Every reference from a file of layer `from` to a top-level module in `forbidden`, as
/// `file:line: path` lines. The path counts when it is written that way (`crate::protocol::x`,
/// `super::super::protocol::x`) or when it resolves, through imports, to a file there.
/// `exempt_tests` skips test files and `#[cfg(test)]` modules.
fn forbidden_refs(
    krate: &Crate,
    from: &str,
    forbidden: &[&str],
    exempt_tests: bool,
) -> Vec<String> {
    let mut found = BTreeSet::new();
    for f in &krate.files {
        if f.module.first().map(String::as_str) != Some(from) || (exempt_tests && f.is_test) {
            continue;
        }
        for r in &f.scan.refs {
            if exempt_tests && r.in_test_mod {
                continue;
            }
            let Some(abs) = &r.abs else { continue };
            let written = abs
                .first()
                .map(String::as_str)
                .filter(|t| forbidden.contains(t));
            let target = krate.resolve(abs);
            let resolved = target
                .and_then(|t| krate.files[t].module.first())
                .map(String::as_str)
                .filter(|t| forbidden.contains(t));
            if written.is_some() || resolved.is_some() {
                let via = match target {
                    Some(t) if resolved.is_some() && written.is_none() => {
                        format!(" (resolves to {})", krate.files[t].path)
                    }
                    _ => String::new(),
                };
                let test = if r.in_test_mod || f.is_test {
                    " [test code]"
                } else {
                    ""
                };
                let orphan = if f.declared {
                    ""
                } else {
                    " [orphan file: no `mod` declares it]"
                };
                found.insert(format!(
                    "{}:{}: `{}`{via}{test}{orphan}",
                    f.path, r.line, r.text
                ));
            }
        }
    }
    found.into_iter().collect()
}

fn report(rule: &str, violations: &[String]) {
    if !violations.is_empty() {
        panic!(
            "{} violation(s) of the rule: {rule}\n  {}\n",
            violations.len(),
            violations.join("\n  ")
        );
    }
}

#[test]
fn domain_imports_no_adapter_protocol_or_config() {
    let krate = load_crate();
    let v = forbidden_refs(
        &krate,
        "domain",
        &[
            "protocol", "inbound", "outbound", "config", "app", "logging", "mock",
        ],
        false,
    );
    report(
        "src/domain/ is the pure core (the spec): it must not reference protocol, inbound, \
         outbound, config, app, logging or mock, not even in its tests (use the mockall fakes)",
        &v,
    );
}

#[test]
fn protocol_depends_only_on_domain() {
    let krate = load_crate();
    let v = forbidden_refs(
        &krate,
        "protocol",
        &["inbound", "outbound", "config", "app", "logging", "mock"],
        false,
    );
    report(
        "src/protocol/ (wire formats, pure) may depend on the domain only: no inbound, outbound, \
         config, app, logging or mock",
        &v,
    );
}

#[test]
fn inbound_and_outbound_do_not_import_each_other() {
    let krate = load_crate();
    // Test wiring is exempt from this rule only: a file named `tests.rs` (such as
    // src/inbound/http/tests.rs, which assembles the real app with in-memory stores) and any
    // `#[cfg(test)] mod x { ... }` block may build real adapters of the other side.
    let mut v = forbidden_refs(&krate, "inbound", &["outbound"], true);
    v.extend(forbidden_refs(&krate, "outbound", &["inbound"], true));
    report(
        "the inbound and outbound adapters hang off the domain and must not reference each other \
         (src/inbound/ -> crate::outbound, src/outbound/ -> crate::inbound)",
        &v,
    );
}

/// The cycles inside each layer, each as a chain `file:line `path`` -> ... back to the start.
fn layer_cycles(krate: &Crate) -> Vec<String> {
    // (from, to) -> the first (line, path) of that reference
    let mut graph: BTreeMap<(usize, usize), (usize, String)> = BTreeMap::new();
    for e in krate.edges() {
        let from = &krate.files[e.from];
        let to = &krate.files[e.to];
        // Test code may reach anywhere.
        if from.is_test || e.r.in_test_mod {
            continue;
        }
        // A parent re-exporting its own descendants (`pub use child::Name`) is not a dependency.
        if e.r.reexport
            && to.module.len() > from.module.len()
            && to.module.starts_with(&from.module)
        {
            continue;
        }
        let layer = krate.layer(e.from);
        if layer.is_none() || layer != krate.layer(e.to) {
            continue;
        }
        let entry = graph
            .entry((e.from, e.to))
            .or_insert((e.r.line, e.r.text.clone()));
        if e.r.line < entry.0 {
            *entry = (e.r.line, e.r.text.clone());
        }
    }
    let mut adj: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &(a, b) in graph.keys() {
        adj.entry(a).or_default().push(b);
    }

    // Strongly connected components (Tarjan).
    struct Tarjan<'a> {
        adj: &'a BTreeMap<usize, Vec<usize>>,
        index: HashMap<usize, usize>,
        low: HashMap<usize, usize>,
        stack: Vec<usize>,
        on_stack: BTreeSet<usize>,
        sccs: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for &w in self.adj.get(&v).map(Vec::as_slice).unwrap_or(&[]) {
                if !self.index.contains_key(&w) {
                    self.visit(w);
                    let lw = self.low[&w];
                    let lv = self.low.get_mut(&v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(&w) {
                    let iw = self.index[&w];
                    let lv = self.low.get_mut(&v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[&v] == self.index[&v] {
                let mut scc = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on_stack.remove(&w);
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                scc.sort();
                self.sccs.push(scc);
            }
        }
    }
    let mut t = Tarjan {
        adj: &adj,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        sccs: Vec::new(),
    };
    let nodes: BTreeSet<usize> = graph.keys().flat_map(|&(a, b)| [a, b]).collect();
    for &v in &nodes {
        if !t.index.contains_key(&v) {
            t.visit(v);
        }
    }

    // In each component, for every edge u -> v, the shortest way back v ~> u: one cycle through
    // that edge. Every edge that keeps a cycle alive shows up in at least one listed cycle.
    let mut cycles: BTreeSet<Vec<usize>> = BTreeSet::new();
    for scc in t.sccs.iter().filter(|s| s.len() > 1) {
        let members: BTreeSet<usize> = scc.iter().copied().collect();
        for &(u, v) in graph.keys() {
            if !members.contains(&u) || !members.contains(&v) {
                continue;
            }
            let mut prev: HashMap<usize, usize> = HashMap::new();
            let mut queue = VecDeque::from([v]);
            let mut seen = BTreeSet::from([v]);
            while let Some(x) = queue.pop_front() {
                if x == u {
                    break;
                }
                for &y in adj.get(&x).map(Vec::as_slice).unwrap_or(&[]) {
                    if members.contains(&y) && seen.insert(y) {
                        prev.insert(y, x);
                        queue.push_back(y);
                    }
                }
            }
            let mut back = vec![u];
            let mut x = u;
            while x != v {
                x = prev[&x];
                back.push(x);
            }
            back.reverse(); // v ... u
            let mut cycle = vec![u];
            cycle.extend(back.into_iter().take_while(|&x| x != u)); // u v ... (before u)
            let start = cycle
                .iter()
                .enumerate()
                .min_by_key(|&(_, &f)| &krate.files[f].path)
                .unwrap()
                .0;
            cycle.rotate_left(start);
            cycles.insert(cycle);
        }
    }
    cycles
        .into_iter()
        .map(|cycle| {
            let layer = krate.layer(cycle[0]).unwrap_or("?");
            let mut s = format!("cycle in {layer} ({} files):", cycle.len());
            for (k, &a) in cycle.iter().enumerate() {
                let b = cycle[(k + 1) % cycle.len()];
                let (line, path) = &graph[&(a, b)];
                let arrow = if k == 0 { "   " } else { "-> " };
                s.push_str(&format!(
                    "\n    {arrow}{}:{line} `{path}`",
                    krate.files[a].path
                ));
                if !krate.files[a].declared {
                    s.push_str(" [orphan file: no `mod` declares it]");
                }
            }
            s.push_str(&format!("\n    -> {}", krate.files[cycle[0]].path));
            s
        })
        .collect()
}

#[test]
fn no_import_cycles_inside_a_layer() {
    let krate = load_crate();
    let cycles = layer_cycles(&krate);
    report(
        "no import cycles between the files of one layer (domain, protocol, inbound, outbound); \
         each line is `file:line `path`` where that file refers to the next one",
        &cycles,
    );
}

#[test]
fn scanner_finds_the_real_references() {
    let krate = load_crate();
    let edges = krate.edges();
    assert!(
        edges.len() > 50,
        "the scanner found only {} references between files of src/: it is broken, so the \
         architecture rules would pass vacuously",
        edges.len()
    );
    assert!(
        krate
            .files
            .iter()
            .filter(|f| f
                .module
                .first()
                .is_some_and(|t| LAYERS.contains(&t.as_str())))
            .count()
            > 10,
        "fewer than 10 layer files found under src/"
    );
    println!(
        "{} files, {} cross-file references",
        krate.files.len(),
        edges.len()
    );
}

// ------------------------------------------------------------------------------------------------
// Tests of the scanner itself, on small inline sources
// ------------------------------------------------------------------------------------------------

fn segs(path: &str) -> Vec<String> {
    if path.is_empty() {
        Vec::new()
    } else {
        path.split("::").map(String::from).collect()
    }
}

/// The references of `src` written in module `module`, as (line, abs path).
fn refs_of(src: &str, module: &str, modules: &[&str]) -> Vec<(usize, String)> {
    let known: BTreeSet<Vec<String>> = modules.iter().map(|m| segs(m)).collect();
    scan(src, &segs(module), &|m| known.contains(m))
        .refs
        .into_iter()
        .map(|r| {
            (
                r.line,
                r.abs
                    .map(|a| a.join("::"))
                    .unwrap_or_else(|| "<above root>".into()),
            )
        })
        .collect()
}

fn mini_crate(files: &[(&str, &str)]) -> Crate {
    Crate::from_sources(
        files
            .iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect(),
    )
}

fn file_index(krate: &Crate, path: &str) -> usize {
    krate.files.iter().position(|f| f.path == path).unwrap()
}

#[test]
fn scanner_expands_a_grouped_use() {
    let refs = refs_of(
        "use crate::{protocol::openai::ChatBody, domain::{names, model::Model as M}};\n",
        "domain::ports",
        &[],
    );
    assert_eq!(
        refs,
        vec![
            (1, "protocol::openai::ChatBody".into()),
            (1, "domain::names".into()),
            (1, "domain::model::Model".into())
        ]
    );
}

#[test]
fn scanner_reads_a_multi_line_use_and_inline_paths() {
    let src = "use crate::outbound::memory::{\n    MemoryStores,\n    MemoryClock,\n};\n\
               pub fn f(b: crate::protocol::openai::ChatBody) -> crate::protocol::WireFormat {\n\
               \x20   for x in crate::domain::list() {}\n}\n\
               pub(crate) struct S;\npub(in crate::domain) fn g() {}\nuse std::sync::Arc;\n";
    assert_eq!(
        refs_of(src, "domain::service::chat", &[]),
        vec![
            (2, "outbound::memory::MemoryStores".into()),
            (3, "outbound::memory::MemoryClock".into()),
            (5, "protocol::openai::ChatBody".into()),
            (5, "protocol::WireFormat".into()),
            (6, "domain::list".into()),
        ]
    );
}

#[test]
fn scanner_ignores_paths_in_comments_strings_and_chars() {
    let src = r####"// use crate::protocol::a;
/// crate::protocol::b
/* crate::protocol::c /* nested crate::protocol::d */ crate::protocol::e */
const A: &str = "crate::protocol::f \" crate::protocol::g";
const B: &str = r#"crate::protocol::h "quoted" "#;
const C: &[u8] = br##"crate::protocol::i"##;
const D: char = '"'; const E: char = '\''; const F: u8 = b'\\';
fn g<'a>(x: &'a str) -> &'a str { x }
const H: &str = "multi
line crate::protocol::j";
use crate::domain::names;
"####;
    let stripped = strip(src);
    assert_eq!(stripped.lines().count(), src.lines().count());
    assert!(!stripped.contains("protocol"), "{stripped}");
    assert_eq!(
        refs_of(src, "domain::ports", &[]),
        vec![(11, "domain::names".into())]
    );
}

#[test]
fn scanner_resolves_super_paths_and_inline_test_modules() {
    let src = "use super::super::super::protocol::sse::SseFramer;\n\
               fn f() { super::telemetry::record(); self::helper(); }\n\
               #[cfg(test)]\n#[allow(unused)]\nmod tests {\n    use super::*;\n    \
               use super::super::super::protocol::x;\n}\n\
               use super::super::super::super::nowhere;\n";
    let refs = refs_of(src, "domain::service::chat", &[]);
    assert_eq!(
        refs,
        vec![
            (1, "protocol::sse::SseFramer".into()),
            (2, "domain::service::telemetry::record".into()),
            (2, "domain::service::chat::helper".into()),
            (6, "domain::service::chat".into()),
            // from inside `mod tests`, three `super`s only reach `domain`
            (7, "domain::protocol::x".into()),
            (9, "<above root>".into()),
        ]
    );
    let scanned = scan(src, &segs("domain::service::chat"), &|_| false);
    let in_test: Vec<bool> = scanned.refs.iter().map(|r| r.in_test_mod).collect();
    assert_eq!(in_test, vec![false, false, false, true, true, false]);
    // a module also built outside tests is not test code
    let shared =
        "#[cfg(any(test, feature = \"mock\"))]\npub mod fakes { use crate::outbound::x; }\n";
    let scanned = scan(shared, &segs("domain"), &|_| false);
    assert!(!scanned.refs[0].in_test_mod);

    // the rule sees the climb out of `domain`
    let krate = mini_crate(&[
        ("src/lib.rs", "pub mod domain; pub mod protocol;"),
        ("src/domain/mod.rs", "pub mod service;"),
        ("src/domain/service/mod.rs", "pub mod chat;"),
        (
            "src/domain/service/chat.rs",
            "use super::super::super::protocol::sse::SseFramer;",
        ),
        ("src/protocol/mod.rs", "pub mod sse;"),
        ("src/protocol/sse.rs", "pub struct SseFramer;"),
        (
            "src/domain/stale.rs",
            "fn f() {}\nuse crate::domain::service::chat::{X, self};\ntype T = crate::protocol::sse::SseFramer;",
        ),
    ]);
    assert_eq!(
        forbidden_refs(&krate, "domain", &["protocol"], false),
        vec![
            "src/domain/service/chat.rs:1: `super::super::super::protocol::sse::SseFramer`",
            "src/domain/stale.rs:3: `crate::protocol::sse::SseFramer` [orphan file: no `mod` declares it]",
        ]
    );
}

#[test]
fn scanner_follows_re_exports_and_child_module_paths() {
    let krate = mini_crate(&[
        ("src/lib.rs", "pub mod a; pub mod b;"),
        (
            "src/a/mod.rs",
            "mod child;\nmod other;\npub use self::child::{A, B};\npub(crate) use other::C as Renamed;\nuse crate::b::Helper;\n",
        ),
        (
            "src/a/child.rs",
            "pub struct A; pub struct B;\nuse super::Helper;\n",
        ),
        ("src/a/other.rs", "pub struct C;"),
        (
            "src/b.rs",
            "pub struct Helper;\nfn f(_: crate::a::A, _: crate::a::Renamed, _: crate::a::Other) {}\n",
        ),
    ]);
    let b = file_index(&krate, "src/b.rs");
    let targets: Vec<(usize, &str)> = krate
        .edges()
        .into_iter()
        .filter(|e| e.from == b)
        .map(|e| (e.r.line, krate.files[e.to].path.as_str()))
        .collect();
    // `crate::a::Other` names no module file nor import: it stops at a/mod.rs
    assert_eq!(
        targets,
        vec![
            (2, "src/a/child.rs"),
            (2, "src/a/other.rs"),
            (2, "src/a/mod.rs")
        ]
    );
    // `super::Helper` in child.rs goes through a/mod.rs's private import to b.rs
    let child = file_index(&krate, "src/a/child.rs");
    let to: Vec<&str> = krate
        .edges()
        .into_iter()
        .filter(|e| e.from == child)
        .map(|e| krate.files[e.to].path.as_str())
        .collect();
    assert_eq!(to, vec!["src/b.rs"]);
}

#[test]
fn scanner_finds_cycles_but_not_through_re_exports_or_tests() {
    let krate = mini_crate(&[
        ("src/lib.rs", "pub mod inbound;"),
        (
            "src/inbound/mod.rs",
            "mod chat;\nmod messages;\nmod error;\n#[cfg(test)]\nmod tests;\npub use error::ApiError;\npub fn shared() {}\n",
        ),
        (
            "src/inbound/error.rs",
            "pub struct ApiError;\nfn f() { super::shared(); }\n",
        ),
        (
            "src/inbound/chat.rs",
            "use super::ApiError;\nfn f() { super::messages::serve(); }\n",
        ),
        (
            "src/inbound/messages.rs",
            "pub fn serve() {}\nuse crate::inbound::chat::x;\n#[cfg(test)]\nmod tests { use super::super::error::y; }\n",
        ),
        ("src/inbound/tests.rs", "use super::chat::z;\n"),
    ]);
    let cycles = layer_cycles(&krate);
    assert_eq!(
        cycles,
        vec![
            "cycle in inbound (2 files):\n       src/inbound/chat.rs:2 `super::messages::serve`\n    \
             -> src/inbound/messages.rs:2 `crate::inbound::chat::x`\n    -> src/inbound/chat.rs"
        ]
    );
}
