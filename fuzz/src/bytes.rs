//! Reads numbers off a fuzz input; past its end every read is zero (or empty), so any
//! input, even an empty one, drives a target to its end. Shared by the target modules:
//! the fuzz crate declares it as `crate::bytes`, and every stable harness that compiles a
//! target by `#[path]` compiles this file the same way.
#![allow(dead_code)] // each target reads only some widths

pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        let mut raw = [0u8; 8];
        for byte in &mut raw {
            *byte = self.u8();
        }
        u64::from_le_bytes(raw)
    }

    pub fn i64(&mut self) -> i64 {
        self.u64() as i64
    }

    /// What is left of the input, without consuming it.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    /// Up to `len` bytes, fewer at the end of the input.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let (taken, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        taken.to_vec()
    }
}
