//! Memory cap on the TOTAL of all linear memories and tables of a store.
//!
//! wasmtime's built-in `StoreLimits` caps each memory separately; a component
//! has several core instances, each with its own memory, so a per-memory cap
//! would let a plugin use a multiple of its limit.

use wasmtime::ResourceLimiter;

#[derive(Debug)]
pub struct TotalMemoryLimiter {
    cap: usize,
    memory_in_use: usize,
    /// Set when a growth was refused, for the report.
    pub refused: Option<usize>,
}

/// Table elements allowed per store (function references; generous for real
/// plugins, small enough that tables cannot be used to exhaust host memory).
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl TotalMemoryLimiter {
    pub fn new(cap: u64) -> Self {
        TotalMemoryLimiter {
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            memory_in_use: 0,
            refused: None,
        }
    }
}

impl ResourceLimiter for TotalMemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_in_use - current.min(self.memory_in_use) + desired;
        if total > self.cap {
            self.refused = Some(total);
            return Ok(false);
        }
        self.memory_in_use = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_the_sum_of_memories() {
        let mut l = TotalMemoryLimiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(
            !l.memory_growing(0, 60, None).unwrap(),
            "second memory pushes total over"
        );
        assert!(l.memory_growing(0, 40, None).unwrap());
        assert_eq!(l.refused, Some(120));
    }
}
