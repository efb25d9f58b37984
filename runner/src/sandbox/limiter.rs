//! Memory cap on the TOTAL of all linear memories and tables of a store.
//!
//! wasmtime's built-in `StoreLimits` caps each memory separately; a component
//! has several core instances, each with its own memories and tables, so a
//! per-memory cap would let a plugin use a multiple of its limit. Tables are
//! counted at [`TABLE_ELEMENT_BYTES`] per element: 100 instances of 20
//! tables of 100,000 function references are 1.6 GB of host memory.

use wasmtime::ResourceLimiter;

#[derive(Debug)]
pub struct TotalMemoryLimiter {
    cap: usize,
    memory_in_use: usize,
    table_in_use: usize,
    /// Set when a growth was refused, for the report.
    pub refused: Option<usize>,
}

/// Table elements allowed per table (function references; generous for real
/// plugins, which have a few thousand at most).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Host bytes one table element costs (wasmtime stores a pointer per element).
pub const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

impl TotalMemoryLimiter {
    pub fn new(cap: u64) -> Self {
        TotalMemoryLimiter {
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            memory_in_use: 0,
            table_in_use: 0,
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
        let memory = self.memory_in_use - current.min(self.memory_in_use) + desired;
        if !self.admit(memory.saturating_add(self.table_in_use)) {
            return Ok(false);
        }
        self.memory_in_use = memory;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.refused = Some(desired.saturating_mul(TABLE_ELEMENT_BYTES));
            return Ok(false);
        }
        let (current, desired) = (
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        );
        let tables = self.table_in_use - current.min(self.table_in_use) + desired;
        if !self.admit(tables.saturating_add(self.memory_in_use)) {
            return Ok(false);
        }
        self.table_in_use = tables;
        Ok(true)
    }
}

impl TotalMemoryLimiter {
    /// Whether `total` bytes of memories and tables fit; remembers a refusal.
    fn admit(&mut self, total: usize) -> bool {
        if total > self.cap {
            self.refused = Some(total);
            return false;
        }
        true
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

    #[test]
    fn tables_count_toward_the_same_total_as_memories() {
        let cap = 1000 * TABLE_ELEMENT_BYTES;
        let mut l = TotalMemoryLimiter::new(cap as u64);
        assert!(l.table_growing(0, 600, None).unwrap());
        assert!(
            !l.table_growing(0, 600, None).unwrap(),
            "a second table pushes the total over"
        );
        assert!(
            !l.memory_growing(0, 500 * TABLE_ELEMENT_BYTES, None)
                .unwrap(),
            "memory shares the total with the tables"
        );
        assert!(
            l.memory_growing(0, 400 * TABLE_ELEMENT_BYTES, None)
                .unwrap()
        );
        assert!(l.refused.is_some());
    }

    /// A core module with `memories` memories of `pages` 64 KiB pages and
    /// `tables` funcref tables of `elements` elements each.
    fn module(memories: u32, pages: u64, tables: u32, elements: u64) -> Vec<u8> {
        use wasm_encoder::{MemorySection, MemoryType, Module, RefType, TableSection, TableType};
        let mut mems = MemorySection::new();
        for _ in 0..memories {
            mems.memory(MemoryType {
                minimum: pages,
                maximum: None,
                memory64: false,
                shared: false,
                page_size_log2: None,
            });
        }
        let mut tabs = TableSection::new();
        for _ in 0..tables {
            tabs.table(TableType {
                element_type: RefType::FUNCREF,
                table64: false,
                minimum: elements,
                maximum: None,
                shared: false,
            });
        }
        let mut m = Module::new();
        m.section(&tabs).section(&mems);
        m.finish()
    }

    /// Instantiates `wasm` in a store capped at `cap` bytes.
    fn instantiate(wasm: &[u8], cap: u64) -> Result<(), String> {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, wasm).map_err(|e| e.to_string())?;
        let mut store = wasmtime::Store::new(&engine, TotalMemoryLimiter::new(cap));
        store.limiter(|l| l);
        wasmtime::Instance::new(&mut store, &module, &[])
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn several_memories_of_one_instance_share_the_cap() {
        // Two memories of 2 MiB each: 4 MiB in total.
        let wasm = module(2, 32, 0, 0);
        assert!(
            instantiate(&wasm, 3 << 20).is_err(),
            "4 MiB under a 3 MiB cap"
        );
        instantiate(&wasm, 5 << 20).expect("the same module under a 5 MiB cap");
    }

    #[test]
    fn many_large_tables_are_refused_under_a_small_cap() {
        // 20 tables of 100,000 function references: 16 MB of host memory.
        let wasm = module(0, 0, 20, 100_000);
        assert!(
            instantiate(&wasm, 4 << 20).is_err(),
            "16 MB under a 4 MiB cap"
        );
        instantiate(&wasm, 32 << 20).expect("the same tables under a 32 MiB cap");
    }
}
