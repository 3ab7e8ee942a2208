//! The Apache Flink 2.3 fixtures of `testdata/flink-2.3/`: where they are, the facts their
//! `MANIFEST.md` records (what Flink's own reader saw), the mapping of the absolute paths
//! Flink wrote (under [`PREFIX`]) onto the copy in the repository, temp copies of a
//! scenario, and Flink's key group of a `Long` key.
//!
//! ```
//! use cornerstone_testkit::flink::{FixtureCopy, Manifest, SCENARIOS};
//!
//! for scenario in SCENARIOS {
//!     let m = Manifest::read(scenario);
//!     assert!(!m.details.is_empty());
//! }
//! let copy = FixtureCopy::new("heap");
//! assert!(copy.path("MANIFEST.md").is_file());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::store::copy_dir;

/// The scenarios of the fixtures, one directory each under [`fixtures`].
pub const SCENARIOS: [&str; 5] = [
    "heap",
    "heap-ttl",
    "heap-savepoints",
    "rocksdb-incremental",
    "rocksdb-savepoints",
];

/// The prefix of the absolute paths Flink wrote (the fixture generator's mount point): its
/// `file:` URIs are `file:/fixtures/flink/flink-2.3/<scenario>/...`.
pub const PREFIX: &str = "/fixtures/flink";

/// `testdata/flink-2.3/`: the copy of `/fixtures/flink/flink-2.3` in the repository.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/flink-2.3")
}

/// The copy in the repository of the file at `uri`, a `file:` URI Flink wrote (under
/// [`PREFIX`]). Panics on any other URI.
pub fn local(uri: &str) -> PathBuf {
    let rest = uri
        .strip_prefix("file:")
        .and_then(|p| p.strip_prefix(PREFIX))
        .unwrap_or_else(|| panic!("{uri} is not under file:{PREFIX}"));
    fixtures().join("..").join(rest.trim_start_matches('/'))
}

/// The text of the `MANIFEST.md` of `scenario` (a directory under [`fixtures`]).
pub fn manifest_text(scenario: &str) -> String {
    std::fs::read_to_string(fixtures().join(scenario).join("MANIFEST.md")).unwrap()
}

/// The cells of a Markdown table row, trimmed and without their backquotes.
pub fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().trim_matches('`').to_string())
        .collect()
}

/// A row of the "`_metadata` headers" table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The size of the `_metadata` file, in bytes.
    pub size: u64,
    /// The format version.
    pub version: u32,
    /// The checkpoint id.
    pub checkpoint_id: u64,
}

/// One "Details" section of a manifest: Flink's view of one `_metadata`.
#[derive(Debug, Default, Clone)]
pub struct Details {
    /// The snapshot directory, relative to the scenario (`<job>/chk-7`); the section is
    /// about its `_metadata`.
    pub dir: String,
    /// `- checkpoint id:`.
    pub checkpoint_id: u64,
    /// `- master states:`.
    pub master_states: usize,
    /// `- operators:`.
    pub operators: usize,
    /// `- properties:`, as Flink printed its `CheckpointProperties`.
    pub properties: String,
    /// The lines of the ```` ```text ```` block: every operator, subtask and handle.
    pub block: Vec<String>,
}

/// The facts of a scenario's `MANIFEST.md`.
#[derive(Debug, Default, Clone)]
pub struct Manifest {
    /// The "Operators" table: uid -> (name, operator id).
    pub operators: BTreeMap<String, (String, String)>,
    /// The "Handle type codes found" list: (type name, code).
    pub codes: BTreeSet<(String, u8)>,
    /// The "`_metadata` headers" table, by snapshot directory (relative to the scenario).
    pub headers: BTreeMap<String, Header>,
    /// The "Files and references" table without the `_metadata` files' rows (their sizes are
    /// in [`headers`](Self::headers)): file (relative to the scenario) -> (bytes, the
    /// snapshot directories that reference it).
    pub files: BTreeMap<String, (u64, BTreeSet<String>)>,
    /// The "Details" sections, in the manifest's order.
    pub details: Vec<Details>,
}

impl Manifest {
    /// Parses the `MANIFEST.md` of `scenario`.
    pub fn read(scenario: &str) -> Self {
        Self::parse(&manifest_text(scenario))
    }

    /// Parses the text of a `MANIFEST.md`.
    pub fn parse(text: &str) -> Self {
        let mut m = Manifest::default();
        let mut section = "";
        let mut in_block = false;
        for line in text.lines() {
            if let Some(h) = line.strip_prefix("## ") {
                section = h;
                continue;
            }
            let row = line.starts_with("| `");
            if section.starts_with("Operators") && row {
                let c = cells(line);
                m.operators
                    .insert(c[0].clone(), (c[1].clone(), c[2].clone()));
            } else if section.starts_with("Handle type codes") && line.starts_with("- `") {
                let item = line.trim_start_matches("- `").trim_end_matches('`');
                let (name, code) = item.split_once('(').unwrap();
                m.codes
                    .insert((name.into(), code.trim_end_matches(')').parse().unwrap()));
            } else if section.starts_with("`_metadata` headers")
                && row
                && !line.starts_with("| `_metadata` |")
            {
                let c = cells(line);
                m.headers.insert(
                    snapshot_dir(&c[0]),
                    Header {
                        size: c[1].parse().unwrap(),
                        version: c[4].parse().unwrap(),
                        checkpoint_id: c[5].parse().unwrap(),
                    },
                );
            } else if section.starts_with("Files and references") && row {
                let c = cells(line);
                if c[2] != "(metadata)" {
                    let by = c[2].split(", ").map(str::to_string).collect();
                    m.files.insert(c[0].clone(), (c[1].parse().unwrap(), by));
                }
            } else if section.starts_with("Details") {
                if let Some(h) = line.strip_prefix("### `") {
                    m.details.push(Details {
                        dir: snapshot_dir(h.trim_end_matches('`')),
                        ..Details::default()
                    });
                    continue;
                }
                let Some(d) = m.details.last_mut() else {
                    continue;
                };
                if line.starts_with("```text") {
                    in_block = true;
                } else if line.starts_with("```") {
                    in_block = false;
                } else if in_block {
                    d.block.push(line.to_string());
                } else if let Some(v) = line.strip_prefix("- checkpoint id: ") {
                    d.checkpoint_id = v.parse().unwrap();
                } else if let Some(v) = line.strip_prefix("- master states: ") {
                    d.master_states = v.parse().unwrap();
                } else if let Some(v) = line.strip_prefix("- operators: ") {
                    d.operators = v.parse().unwrap();
                } else if let Some(v) = line.strip_prefix("- properties: ") {
                    d.properties = v.into();
                }
            }
        }
        m
    }

    /// The files the snapshot directory `dir` references: file -> bytes.
    pub fn files_of(&self, dir: &str) -> BTreeMap<String, u64> {
        self.files
            .iter()
            .filter(|(_, (_, by))| by.contains(dir))
            .map(|(f, (b, _))| (f.clone(), *b))
            .collect()
    }
}

/// The directory of a `<dir>/_metadata` path.
fn snapshot_dir(metadata: &str) -> String {
    metadata.trim_end_matches("/_metadata").to_string()
}

/// A temp copy of one scenario at `<root>/flink-2.3/<scenario>`: `<root>` stands for
/// [`PREFIX`] (map `PREFIX` onto [`root`](Self::root) to resolve Flink's absolute paths).
/// Removed when dropped.
#[derive(Debug)]
pub struct FixtureCopy {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    scenario: String,
}

impl FixtureCopy {
    /// Copies `scenario` into a new temp directory.
    pub fn new(scenario: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        copy_dir(
            &fixtures().join(scenario),
            &root.join("flink-2.3").join(scenario),
        );
        FixtureCopy {
            _tmp: tmp,
            root,
            scenario: scenario.to_string(),
        }
    }

    /// The copy of [`PREFIX`] (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The scenario copied.
    pub fn scenario(&self) -> &str {
        &self.scenario
    }

    /// The path in the copy of `rel` (relative to the scenario).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join("flink-2.3").join(&self.scenario).join(rel)
    }

    /// Every file in the copy.
    pub fn every_file(&self) -> BTreeSet<PathBuf> {
        fn walk(d: &Path, out: &mut BTreeSet<PathBuf>) {
            for e in std::fs::read_dir(d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.insert(e.path());
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.root, &mut out);
        out
    }
}

/// Flink's `MathUtils.murmurHash(int)`.
fn murmur(code: i32) -> i32 {
    let mut c = code.wrapping_mul(0xcc9e2d51u32 as i32);
    c = c.rotate_left(15);
    c = c.wrapping_mul(0x1b873593);
    c = c.rotate_left(13);
    c = c.wrapping_mul(5).wrapping_add(0xe6546b64u32 as i32);
    c ^= 4;
    let mut h = c as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85ebca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2ae35);
    h ^= h >> 16;
    let c = h as i32;
    if c >= 0 {
        c
    } else if c != i32::MIN {
        -c
    } else {
        0
    }
}

/// Flink's key group of a `Long` key at max parallelism 128 (the fixtures'):
/// `KeyGroupRangeAssignment.assignToKeyGroup`, `MathUtils.murmurHash(key.hashCode()) % 128`.
pub fn key_group(key: i64) -> u32 {
    let hash = (key ^ ((key as u64) >> 32) as i64) as i32;
    (murmur(hash) % 128) as u32
}
