//! The Slurm example: the job files that the guide shows are those of `examples/slurm/`,
//! character for character, and every file of that folder is shown (in
//! `docs/src/long-runs.md`). A code block shows a file when the last non-blank line before its
//! opening fence is the file's path in backticks followed by a colon
//! (`` `examples/slurm/merge.sbatch`: ``). Every block of `README.md` and the guide that shows a
//! file under `examples/` must equal it. `scripts/slurm_test.sh` runs these files on a
//! one-node Slurm. Only the standard library.

use std::fs;
use std::path::{Path, PathBuf};

/// The chapter that shows the Slurm job files.
const CHAPTER: &str = "docs/src/long-runs.md";
/// The folder of the Slurm job files.
const FOLDER: &str = "examples/slurm";

fn root() -> PathBuf {
    option_env!("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("current folder"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A block that shows a file: the path it names, the 1-based line of its opening fence, and
/// its contents (each line ending in a newline, as a file's lines do).
#[derive(Debug, PartialEq)]
struct Shown {
    path: String,
    line: usize,
    contents: String,
}

/// An opening or closing fence (``` or ~~~ after at most three spaces): its character and
/// length.
fn fence(line: &str) -> Option<(char, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let c = rest.chars().next().filter(|&c| c == '`' || c == '~')?;
    let n = rest.chars().take_while(|&x| x == c).count();
    (n >= 3).then_some((c, n))
}

/// The path that a label line names: `` `PATH`: ``, with PATH under `examples/`.
fn label(line: &str) -> Option<&str> {
    let path = line.trim().strip_prefix('`')?.strip_suffix("`:")?;
    (path.starts_with("examples/") && !path.contains('`')).then_some(path)
}

/// Every fenced block of `text` whose label line names a file under `examples/`.
fn shown_files(text: &str) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut last_text_line = "";
    let mut open: Option<((char, usize), Option<Shown>)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut open {
            Some(((c, n), shown)) => {
                let closes = fence(line).is_some_and(|(c2, n2)| c2 == *c && n2 >= *n)
                    && line.trim().chars().all(|x| x == *c);
                if closes {
                    out.extend(shown.take());
                    open = None;
                    // A label names the one block that follows it.
                    last_text_line = "";
                } else if let Some(s) = shown {
                    s.contents.push_str(line);
                    s.contents.push('\n');
                }
            }
            None => {
                if let Some(f) = fence(line) {
                    let shown = label(last_text_line).map(|path| Shown {
                        path: path.to_string(),
                        line: i + 1,
                        contents: String::new(),
                    });
                    open = Some((f, shown));
                } else if !line.trim().is_empty() {
                    last_text_line = line;
                }
            }
        }
    }
    out
}

/// README.md and every Markdown file of the guide.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut chapters: Vec<PathBuf> = fs::read_dir(root().join("docs").join("src"))
        .expect("docs/src")
        .map(|e| e.expect("docs/src entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    chapters.sort();
    files.extend(chapters);
    files
}

/// Where `shown` and `actual` first differ, for the failure message.
fn first_difference(shown: &str, actual: &str) -> String {
    let (mut a, mut b) = (shown.lines(), actual.lines());
    for n in 1.. {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (None, None) => break,
            (x, y) => return format!("line {n}: shown {x:?}, file {y:?}"),
        }
    }
    "the final newline".to_string()
}

#[test]
fn every_slurm_job_file_is_shown_as_it_is() {
    let text = read(&root().join(CHAPTER));
    let shown = shown_files(&text);
    let mut files: Vec<PathBuf> = fs::read_dir(root().join(FOLDER))
        .expect(FOLDER)
        .map(|e| e.expect("examples/slurm entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "{FOLDER} should hold the submit script and two job scripts"
    );
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy();
        let path = format!("{FOLDER}/{name}");
        let blocks: Vec<&Shown> = shown.iter().filter(|s| s.path == path).collect();
        assert_eq!(
            blocks.len(),
            1,
            "{CHAPTER} should show {path} once, in a code block after a line `{path}`:"
        );
        let actual = read(&file);
        assert!(
            blocks[0].contents == actual,
            "{CHAPTER}:{}: the block differs from {path} at {}",
            blocks[0].line,
            first_difference(&blocks[0].contents, &actual)
        );
    }
}

#[test]
fn every_block_that_shows_an_example_file_equals_it() {
    let mut checked = 0;
    for doc in documents() {
        for s in shown_files(&read(&doc)) {
            let file = root().join(&s.path);
            assert!(
                file.is_file(),
                "{}:{}: shows {}, which does not exist",
                doc.display(),
                s.line,
                s.path
            );
            let actual = read(&file);
            assert!(
                s.contents == actual,
                "{}:{}: the block differs from {} at {}",
                doc.display(),
                s.line,
                s.path,
                first_difference(&s.contents, &actual)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "only {checked} blocks show a file of examples/"
    );
}

#[test]
fn the_parser_finds_what_it_should() {
    let text = "\
Intro `examples/a.sh`: is not a label (text follows).

`examples/slurm/x.sh`:

```bash
#!/bin/bash
echo \"```\" inside
```

An unlabelled block:

```
`examples/b.sh`:
```

`not-examples/c.sh`:

~~~~
ignored
~~~~

`examples/d.sbatch`:
````
one
```
two

````

```
not labelled: the label above named the block before
```
";
    let shown = shown_files(text);
    assert_eq!(
        shown,
        vec![
            Shown {
                path: "examples/slurm/x.sh".to_string(),
                line: 5,
                contents: "#!/bin/bash\necho \"```\" inside\n".to_string(),
            },
            Shown {
                path: "examples/d.sbatch".to_string(),
                line: 23,
                contents: "one\n```\ntwo\n\n".to_string(),
            },
        ]
    );
    assert_eq!(
        first_difference("a\nb\n", "a\nc\n"),
        "line 2: shown Some(\"b\"), file Some(\"c\")"
    );
    assert_eq!(
        first_difference("a\n", "a\nb\n"),
        "line 2: shown None, file Some(\"b\")"
    );
}
