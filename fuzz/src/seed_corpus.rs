//! The seed corpus of a fuzz target (`fuzz/corpus/<target>/`), for the stable harnesses
//! that run every seed as a regression. Compiled by `#[path]` into each harness; the
//! path is found from the including crate's directory.

use std::path::PathBuf;

/// Every file of the target's corpus, sorted by path; panics if there is none.
pub fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .map(|path| (path.clone(), std::fs::read(&path).unwrap()))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seed corpus in {}", dir.display());
    files
}
