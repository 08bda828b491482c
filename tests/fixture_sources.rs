//! Keeps tests/fixtures/SOURCES.md true (issue 22, "fixtures with a source"): every file under
//! tests/fixtures/ has exactly one row there, every row names a file that exists, and every row
//! says where the file's shape comes from (a URL, or a capture by one of the suite's scripts) and
//! when (a YYYY-MM-DD date). Rows are the markdown table rows whose first cell is a path in
//! backquotes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every file under `dir`, as a path relative to tests/fixtures with `/` separators.
fn files_under(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, root, out);
        } else {
            let relative = path.strip_prefix(root).expect("under the root");
            let relative = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            if relative != "SOURCES.md" {
                out.push(relative);
            }
        }
    }
}

/// The rows of SOURCES.md: path -> the whole row's text.
fn rows(sources: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut rows = BTreeMap::new();
    let mut duplicates = Vec::new();
    for line in sources.lines() {
        let Some(rest) = line.trim().strip_prefix("| `") else {
            continue;
        };
        let Some((path, _)) = rest.split_once('`') else {
            continue;
        };
        if rows.insert(path.to_string(), line.to_string()).is_some() {
            duplicates.push(path.to_string());
        }
    }
    (rows, duplicates)
}

/// A YYYY-MM-DD somewhere in the text.
fn has_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.windows(10).any(|w| {
        w.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
    })
}

#[test]
fn every_fixture_has_one_row_with_a_source_and_a_date_and_every_row_a_file() {
    let root = fixtures_dir();
    let sources =
        std::fs::read_to_string(root.join("SOURCES.md")).expect("tests/fixtures/SOURCES.md exists");
    let (rows, duplicates) = rows(&sources);
    assert!(
        duplicates.is_empty(),
        "SOURCES.md: more than one row for {duplicates:?}"
    );

    let mut files = Vec::new();
    files_under(&root, &root, &mut files);
    assert!(!files.is_empty(), "no fixtures found");

    let missing: Vec<_> = files.iter().filter(|f| !rows.contains_key(*f)).collect();
    assert!(
        missing.is_empty(),
        "fixtures without a row in tests/fixtures/SOURCES.md: {missing:?}"
    );
    let stale: Vec<_> = rows
        .keys()
        .filter(|path| !root.join(path.as_str()).is_file())
        .collect();
    assert!(
        stale.is_empty(),
        "rows of tests/fixtures/SOURCES.md naming no file: {stale:?}"
    );
    for (path, row) in &rows {
        assert!(
            row.contains("https://") || row.contains("captured from"),
            "SOURCES.md row for {path} names no source URL (or capture): {row}"
        );
        assert!(
            has_date(row),
            "SOURCES.md row for {path} has no YYYY-MM-DD date: {row}"
        );
    }
}

#[test]
fn the_row_reader_sees_paths_dates_and_duplicates() {
    let (rows, duplicates) = rows(
        "| path | x |\n|---|---|\n| `a/b.json` | https://x.test 2026-12-07 |\n\
         | `a/b.json` | again |\nnot a row `c`\n",
    );
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["a/b.json"]);
    assert_eq!(duplicates, ["a/b.json"]);
    assert!(has_date("looked 2026-12-07."));
    assert!(!has_date("2026-12 and 12-07"));
}
