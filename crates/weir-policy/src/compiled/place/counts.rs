//! The placement's key counter: an open-addressing map from 64-bit keys to counts.

use alloc::vec::Vec;

use crate::compiled::{oom, CompileError};

/// Open-addressing counter map from 64-bit keys (never 0 after the `| 1`) with fallible growth.
pub(super) struct Counts {
    slots: Vec<(u64, u32)>,
    pub(super) used: usize,
}

impl Counts {
    pub(super) fn new() -> Self {
        Counts { slots: Vec::new(), used: 0 }
    }
    fn find(&self, k: u64) -> usize {
        let n = self.slots.len();
        let mut i = (k as usize) & (n - 1);
        loop {
            match self.slots.get(i) {
                Some(&(key, _)) if key == k || key == 0 => return i,
                Some(_) => i = (i + 1) & (n - 1),
                None => return 0,
            }
        }
    }
    pub(super) fn get(&self, k: u64) -> u32 {
        if self.slots.is_empty() {
            return 0;
        }
        let k = k | 1;
        match self.slots.get(self.find(k)) {
            Some(&(key, c)) if key == k => c,
            _ => 0,
        }
    }
    /// Forgets every key, keeping the slots (reused by the next candidate placement).
    pub(super) fn clear(&mut self) {
        self.slots.fill((0, 0));
        self.used = 0;
    }
    /// Forgets every key and sizes the map for about `n` keys without growing, in time
    /// proportional to `n` (not to the largest size it had): the run search clears it once per
    /// candidate tuple.
    pub(super) fn reset_for(&mut self, n: usize) -> Result<(), CompileError> {
        let len = n.saturating_mul(2).max(64).next_power_of_two();
        self.slots.clear();
        self.slots.try_reserve_exact(len).map_err(oom)?;
        self.slots.resize(len, (0, 0));
        self.used = 0;
        Ok(())
    }
    /// Increments and returns the new count.
    pub(super) fn inc(&mut self, k: u64) -> Result<u32, CompileError> {
        if (self.used + 1) * 2 > self.slots.len() {
            let n = (self.slots.len() * 2).max(1024);
            let mut new: Vec<(u64, u32)> = Vec::new();
            new.try_reserve_exact(n).map_err(oom)?;
            new.resize(n, (0, 0));
            let old = core::mem::replace(&mut self.slots, new);
            for (key, c) in old {
                if key != 0 {
                    let i = self.find(key);
                    if let Some(s) = self.slots.get_mut(i) {
                        *s = (key, c);
                    }
                }
            }
        }
        let k = k | 1;
        let i = self.find(k);
        let Some(s) = self.slots.get_mut(i) else { return Ok(0) };
        if s.0 == 0 {
            *s = (k, 0);
            self.used += 1;
        }
        s.1 += 1;
        Ok(s.1)
    }
}
