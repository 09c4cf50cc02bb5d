//! The documentation's links: every relative Markdown link in `README.md`, `CHANGELOG.md` and
//! the guide (`docs/src/*.md`) names a file that exists, a `#anchor` into a chapter of the guide
//! names one of its headings (as mdBook writes heading ids), every chapter that
//! `docs/src/SUMMARY.md` lists exists and every chapter is listed, and the README stays short.
//! Only the standard library: the check reads the Markdown itself.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The README is the start page; the guide holds the rest.
const README_LIMIT: u64 = 10_240;

fn root() -> PathBuf {
    option_env!("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("current folder"))
}

fn guide() -> PathBuf {
    root().join("docs").join("src")
}

/// README.md, CHANGELOG.md and every Markdown file of the guide.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md"), root().join("CHANGELOG.md")];
    let mut chapters: Vec<PathBuf> = fs::read_dir(guide())
        .expect("docs/src")
        .map(|e| e.expect("docs/src entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    chapters.sort();
    files.extend(chapters);
    files
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fence line (``` or ~~~ after at most three spaces): its character and length.
fn fence(line: &str) -> Option<(char, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let c = rest.chars().next()?;
    if c != '`' && c != '~' {
        return None;
    }
    let n = rest.chars().take_while(|&x| x == c).count();
    (n >= 3).then_some((c, n))
}

/// The text outside fenced code blocks, as paragraphs (runs of non-blank lines) with the
/// 1-based number of their first line.
fn paragraphs(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut open_fence: Option<(char, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        if let Some((c, n)) = open_fence {
            if let Some((c2, n2)) = fence(line) {
                if c2 == c && n2 >= n && line.trim().chars().all(|x| x == c) {
                    open_fence = None;
                }
            }
            continue;
        }
        if let Some(f) = fence(line) {
            out.extend(current.take());
            open_fence = Some(f);
            continue;
        }
        if line.trim().is_empty() {
            out.extend(current.take());
        } else {
            match &mut current {
                Some((_, p)) => {
                    p.push('\n');
                    p.push_str(line);
                }
                None => current = Some((i + 1, line.to_string())),
            }
        }
    }
    out.extend(current);
    out
}

/// Removes code spans (keeping their line breaks, so that line numbers still count): a run of
/// n backticks up to the next run of exactly n backticks. A run without a closing run is
/// literal text.
fn strip_code_spans(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let run_at = |i: usize| chars[i..].iter().take_while(|&&c| c == '`').count();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let n = run_at(i);
        let mut j = i + n;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let m = run_at(j);
                if m == n {
                    close = Some(j);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        match close {
            Some(j) => {
                out.push(' ');
                out.extend(chars[i..j].iter().filter(|&&c| c == '\n'));
                i = j + n;
            }
            None => {
                out.extend(std::iter::repeat_n('`', n));
                i += n;
            }
        }
    }
    out
}

/// The targets of the inline links `[text](target)` (and images) of one paragraph, with an
/// optional title dropped, and of reference definitions `[label]: target`; each with the
/// 0-based line of the paragraph it is on.
fn links(paragraph: &str) -> Vec<(usize, String)> {
    let text = strip_code_spans(paragraph);
    let chars: Vec<char> = text.chars().collect();
    let mut targets = Vec::new();
    let mut i = 0;
    while i + 1 < chars.len() {
        if chars[i] == ']' && chars[i + 1] == '(' {
            let mut j = i + 2;
            let target: String = if chars.get(j) == Some(&'<') {
                let start = j + 1;
                while j < chars.len() && chars[j] != '>' {
                    j += 1;
                }
                chars[start..j.min(chars.len())].iter().collect()
            } else {
                let start = j;
                let mut depth = 0usize;
                while j < chars.len() {
                    match chars[j] {
                        '(' => depth += 1,
                        ')' if depth == 0 => break,
                        ')' => depth -= 1,
                        c if c.is_whitespace() => break,
                        _ => {}
                    }
                    j += 1;
                }
                chars[start..j].iter().collect()
            };
            let line = chars[..i].iter().filter(|&&c| c == '\n').count();
            targets.push((line, target));
            i = j;
        } else {
            i += 1;
        }
    }
    for (k, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix('[') {
            if let Some(end) = rest.find("]:") {
                if let Some(target) = rest[end + 2..].split_whitespace().next() {
                    targets.push((k, target.trim_matches(|c| c == '<' || c == '>').to_string()));
                }
            }
        }
    }
    targets
}

fn link_targets(paragraph: &str) -> Vec<String> {
    links(paragraph).into_iter().map(|(_, t)| t).collect()
}

fn is_external(target: &str) -> bool {
    let lower = target.to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|s| lower.starts_with(s))
}

/// A path with `.` and `..` resolved by name (the files may not exist, so no canonicalize).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The inline text of a heading: code spans keep their content, links keep their text,
/// emphasis marks go.
fn heading_text(raw: &str) -> String {
    let mut s = raw.trim().trim_end_matches('#').trim_end().to_string();
    // [text](target) -> text
    while let Some(open) = s.find("](") {
        let Some(start) = s[..open].rfind('[') else {
            break;
        };
        let Some(close) = s[open..].find(')') else {
            break;
        };
        let text = s[start + 1..open].to_string();
        s.replace_range(start..open + close + 1, &text);
    }
    s.chars().filter(|&c| c != '`' && c != '*').collect()
}

/// mdBook's heading id (mdbook-html's `id_from_content`): the text trimmed and in lower case,
/// whitespace to '-', and of the rest only alphanumerics, '-' and '_' kept.
fn heading_id(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c)
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The ids of a chapter's ATX headings outside fenced code, with mdBook's `-1`, `-2`, …
/// suffixes for repeated ones.
fn heading_ids(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut open_fence: Option<(char, usize)> = None;
    for line in text.lines() {
        if let Some((c, n)) = open_fence {
            if let Some((c2, n2)) = fence(line) {
                if c2 == c && n2 >= n && line.trim().chars().all(|x| x == c) {
                    open_fence = None;
                }
            }
            continue;
        }
        if let Some(f) = fence(line) {
            open_fence = Some(f);
            continue;
        }
        let t = line.trim_start_matches(' ');
        if line.len() - t.len() > 3 {
            continue;
        }
        let hashes = t.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) {
            continue;
        }
        let rest = &t[hashes..];
        if !(rest.is_empty() || rest.starts_with(' ')) {
            continue;
        }
        let base = heading_id(&heading_text(rest));
        let mut id = base.clone();
        let mut k = 1;
        while ids.contains(&id) {
            id = format!("{base}-{k}");
            k += 1;
        }
        ids.insert(id);
    }
    ids
}

#[test]
fn relative_links_name_existing_files_and_headings() {
    let guide = normalise(&guide());
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = read(&doc);
        let dir = doc.parent().expect("a folder").to_path_buf();
        let name = doc
            .strip_prefix(root())
            .unwrap_or(&doc)
            .display()
            .to_string();
        for (first, paragraph) in paragraphs(&text) {
            for (offset, target) in links(&paragraph) {
                let line = first + offset;
                if target.is_empty() || is_external(&target) {
                    continue;
                }
                checked += 1;
                let (file, anchor) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target.as_str(), None),
                };
                let path = if file.is_empty() {
                    doc.clone()
                } else {
                    normalise(&dir.join(file))
                };
                if !path.exists() {
                    problems.push(format!("{name}:{line}: `{target}`: no such file"));
                    continue;
                }
                let in_guide =
                    path.starts_with(&guide) && path.extension().is_some_and(|e| e == "md");
                if let (Some(anchor), true) = (anchor, in_guide) {
                    if !heading_ids(&read(&path)).contains(anchor) {
                        problems.push(format!(
                            "{name}:{line}: `{target}`: no heading with id `{anchor}` in {}",
                            path.strip_prefix(root()).unwrap_or(&path).display()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        checked > 0,
        "no relative links found: is the parser broken?"
    );
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn summary_lists_every_chapter_and_each_exists() {
    let summary = read(&guide().join("SUMMARY.md"));
    let listed: BTreeSet<String> = paragraphs(&summary)
        .iter()
        .flat_map(|(_, p)| link_targets(p))
        .filter(|t| !t.is_empty())
        .collect();
    assert!(!listed.is_empty(), "SUMMARY.md lists no chapter");
    let missing: Vec<&String> = listed
        .iter()
        .filter(|c| !guide().join(c).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "chapters listed in SUMMARY.md but missing: {missing:?}"
    );
    let unlisted: Vec<String> = documents()
        .iter()
        .filter(|p| p.starts_with(guide()))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n != "SUMMARY.md" && !listed.contains(n))
        .collect();
    assert!(
        unlisted.is_empty(),
        "chapters not in SUMMARY.md: {unlisted:?}"
    );
}

#[test]
fn readme_stays_short() {
    let size = fs::metadata(root().join("README.md"))
        .expect("README.md")
        .len();
    assert!(
        size < README_LIMIT,
        "README.md is {size} bytes; keep it under {README_LIMIT} and move detail into docs/src/"
    );
}

#[test]
fn the_parser_finds_what_it_should() {
    let p = "See [a](x.md#b) and [c\nd](../y.md), `[not](code.md)`, ![i](img.png \"t\"),\n\
             [e](https://example.org) and [f](<z w.md>).";
    assert_eq!(
        link_targets(p),
        [
            "x.md#b",
            "../y.md",
            "img.png",
            "https://example.org",
            "z w.md"
        ]
    );
    assert_eq!(link_targets("[ref]: docs/src/a.md"), ["docs/src/a.md"]);
    let lines: Vec<usize> = links("`a\nb` [x](y.md)\n[z](w.md)")
        .iter()
        .map(|l| l.0)
        .collect();
    assert_eq!(lines, [1, 2]);
    let ids = heading_ids(
        "# Title\n\n```text\n# not a heading\n```\n## Safetensors + JSON\n\
         ## Training (feature `torch`)\n## Title\n",
    );
    let want: BTreeSet<String> = [
        "title",
        "safetensors--json",
        "training-feature-torch",
        "title-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(ids, want);
}
