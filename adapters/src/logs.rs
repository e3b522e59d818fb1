//! Reading job logs in chunks (`logs.tail.v1`): byte offsets that never split a UTF-8
//! character, invalid bytes shown as U+FFFD.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The most a client may ask for in one chunk.
pub const CHUNK_BYTES_MAX: u64 = 1024 * 1024;
/// What a client gets when it does not say.
pub const CHUNK_BYTES_DEFAULT: u64 = 64 * 1024;

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Chunk {
    pub text: String,
    /// Where the next read starts: `offset` plus the bytes this chunk consumed.
    pub next_offset: u64,
    /// `next_offset` is the end of the file as it was read.
    pub at_end: bool,
}

/// Reads up to `limit_bytes` from `offset`. A character cut by the limit is left whole for
/// the next chunk, unless the file ends there (then the stray bytes are invalid and
/// replaced). A missing file reads as empty.
pub fn read_chunk(path: &Path, offset: u64, limit_bytes: u64) -> io::Result<Chunk> {
    let limit_bytes = limit_bytes.clamp(1, CHUNK_BYTES_MAX);
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(Chunk { text: String::new(), next_offset: offset, at_end: true });
        }
        Err(error) => return Err(error),
    };
    let size = file.metadata()?.len();
    if offset >= size {
        return Ok(Chunk { text: String::new(), next_offset: offset, at_end: true });
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut window = Vec::with_capacity(window_bytes(offset, limit_bytes, size) as usize);
    file.by_ref().take(window_bytes(offset, limit_bytes, size)).read_to_end(&mut window)?;
    Ok(chunk_of_window(&window, offset, limit_bytes, size))
}

/// How many bytes from `offset` [`chunk_of_window`] needs: the limit, and 3 more for a
/// character the limit cuts, never past `size`.
pub fn window_bytes(offset: u64, limit_bytes: u64, size: u64) -> u64 {
    (limit_bytes.clamp(1, CHUNK_BYTES_MAX) + 3).min(size.saturating_sub(offset))
}

/// The chunk at `offset` of a log of `size` bytes, from `window`: the log's bytes from
/// `offset` on, at least [`window_bytes`] of them (more are ignored). The rules of
/// [`read_chunk`], for logs that are not files (the Postgres store's log chunks).
pub fn chunk_of_window(window: &[u8], offset: u64, limit_bytes: u64, size: u64) -> Chunk {
    let limit_bytes = limit_bytes.clamp(1, CHUNK_BYTES_MAX);
    if offset >= size || window.is_empty() {
        return Chunk { text: String::new(), next_offset: offset, at_end: true };
    }
    // A window shorter than asked for: the log ends there (a file that shrank meanwhile).
    let size = if (window.len() as u64) < window_bytes(offset, limit_bytes, size) {
        offset + window.len() as u64
    } else {
        size
    };
    let wanted = limit_bytes.min(size - offset) as usize;
    let bytes = &window[..wanted];
    let reached_end = offset + bytes.len() as u64 >= size;
    let keep = if reached_end { bytes.len() } else { bytes.len() - incomplete_tail(bytes) };
    // A limit smaller than one character: take the character whole rather than stall.
    let keep = if keep == 0 { first_char_width(&window[..window.len().min(4)]) } else { keep };
    let next_offset = offset + keep as u64;
    Chunk { text: String::from_utf8_lossy(&window[..keep]).into_owned(), next_offset, at_end: next_offset >= size }
}

/// How many bytes at the end of `bytes` are the start of a character that continues
/// past them (0 when the end is complete or the bytes there are invalid anyway).
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=3.min(bytes.len()) {
        let byte = bytes[bytes.len() - back];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // continuation byte: look further back for the lead
        }
        let needed = match byte {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return 0,
        };
        return if needed > back && std::str::from_utf8(&bytes[bytes.len() - back..]).is_err() { back } else { 0 };
    }
    0
}

/// The width of the first character of `bytes` (up to 4 of them), or of the first maximal
/// invalid sequence (what one U+FFFD stands for), so that chunked and whole reads decode
/// alike.
fn first_char_width(bytes: &[u8]) -> usize {
    let width = match bytes.utf8_chunks().next() {
        Some(chunk) => match chunk.valid().chars().next() {
            Some(first) => first.len_utf8(),
            None => chunk.invalid().len(),
        },
        None => 0,
    };
    width.max(1).min(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        file
    }

    /// Reads the whole file chunk by chunk.
    fn read_all(path: &Path, limit: u64) -> (String, Vec<u64>) {
        let mut offset = 0;
        let mut text = String::new();
        let mut offsets = Vec::new();
        for _ in 0..100_000 {
            let chunk = read_chunk(path, offset, limit).unwrap();
            assert!(chunk.next_offset > offset || chunk.at_end, "no progress at {offset}");
            text.push_str(&chunk.text);
            offset = chunk.next_offset;
            offsets.push(offset);
            if chunk.at_end {
                return (text, offsets);
            }
        }
        panic!("never reached the end");
    }

    #[test]
    fn chunks_never_split_a_character() {
        let text = "aé€😀".repeat(50);
        let file = file_with(text.as_bytes());
        for limit in 1..12 {
            let (read, offsets) = read_all(file.path(), limit);
            assert_eq!(read, text, "limit {limit}");
            for offset in offsets {
                assert!(text.is_char_boundary(offset as usize), "offset {offset} splits a character");
            }
        }
    }

    #[test]
    fn regression_a_one_byte_limit_takes_an_invalid_lead_alone() {
        // Found by the property below: C2 C2 80 is an invalid C2 then U+0080; a chunk
        // that took "C2 C2" as one character decoded differently from the whole file.
        let file = file_with(&[0xC2, 0xC2, 0x80]);
        assert_eq!(read_all(file.path(), 1).0, "\u{FFFD}\u{80}");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let file = file_with(b"ok\xFF\xFEend\xE2\x82");
        let chunk = read_chunk(file.path(), 0, 64).unwrap();
        assert_eq!(chunk.text, "ok\u{FFFD}\u{FFFD}end\u{FFFD}");
        assert_eq!((chunk.next_offset, chunk.at_end), (9, true));
    }

    #[test]
    fn offsets_past_the_end_and_missing_files_read_empty() {
        let file = file_with(b"abc");
        assert_eq!(
            read_chunk(file.path(), 10, 64).unwrap(),
            Chunk { text: String::new(), next_offset: 10, at_end: true }
        );
        let missing = Path::new("/nonexistent/semantica/log");
        assert_eq!(read_chunk(missing, 0, 64).unwrap(), Chunk { text: String::new(), next_offset: 0, at_end: true });
    }

    proptest! {
        #[test]
        fn any_bytes_read_back_like_a_lossy_decode_of_the_whole(bytes in prop::collection::vec(any::<u8>(), 0..300), limit in 1u64..40) {
            let file = file_with(&bytes);
            let (read, _) = read_all(file.path(), limit);
            // Chunking must not change what a reader sees: the same text as decoding the
            // whole file at once.
            prop_assert_eq!(read, String::from_utf8_lossy(&bytes).into_owned());
        }
    }
}
