//! Replays the fuzz seed corpus (`fuzz/corpus/<target>/`) through the very
//! bodies the fuzz targets run ([`crate::fuzzing`]), so a plain `cargo test`
//! on stable catches a panic on any input the fuzzers were seeded with.

use crate::fuzzing::{self, TARGETS};
use std::path::{Path, PathBuf};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus");

/// The seed files of one target's corpus, refusing a missing or empty one.
fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(CORPUS).join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the fuzz corpus of {target:?} is missing: cannot read {} ({e})",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("corpus directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "the fuzz corpus of {target:?} ({}) has no seed files",
        dir.display()
    );
    files
}

fn replay(target: &str) {
    let body = fuzzing::body(target).expect("a known target");
    for path in seeds(target) {
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {} ({e})", path.display()));
        // The fuzz targets skip input that is not UTF-8; so does the replay.
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        if std::panic::catch_unwind(|| body(text.as_bytes())).is_err() {
            panic!("{target}: seed {} panicked", path.display());
        }
    }
}

#[test]
fn the_token_corpus_replays() {
    replay("token");
}

#[test]
fn the_authorization_corpus_replays() {
    replay("authorization");
}

#[test]
fn the_grant_corpus_replays() {
    replay("grant");
}

#[test]
fn the_duration_corpus_replays() {
    replay("duration");
}

#[test]
fn the_catalog_corpus_replays() {
    replay("catalog");
}

#[test]
fn the_jose_corpus_replays() {
    replay("jose");
}

#[test]
fn every_corpus_directory_belongs_to_a_target() {
    let entries = std::fs::read_dir(CORPUS)
        .unwrap_or_else(|e| panic!("the fuzz corpus {CORPUS} is missing ({e})"));
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            path.is_dir() && TARGETS.iter().any(|(target, _)| *target == name),
            "{} is not the corpus of a known fuzz target ({:?}): replay it here too",
            path.display(),
            TARGETS.map(|(target, _)| target)
        );
    }
}
