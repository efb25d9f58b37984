//! Process exit codes: stable, documented in the README and `--help`.

/// Every way `valero` can end, mapped to one exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the run passed (or the command succeeded).
    Success,
    /// 1: at least one stage failed, or was skipped because a need failed.
    StageFailed,
    /// 2: no stage failed but a gate was inconclusive.
    Inconclusive,
    /// 3: invalid pipeline.toml or command-line usage.
    Invalid,
    /// 4: a plugin could not be loaded or verified (digest, imports, compile).
    PluginLoad,
    /// 5: an internal or environment error (I/O, records, engine).
    Internal,
    /// 130: interrupted (Ctrl-C / SIGINT / SIGTERM).
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::StageFailed => 1,
            Exit::Inconclusive => 2,
            Exit::Invalid => 3,
            Exit::PluginLoad => 4,
            Exit::Internal => 5,
            Exit::Interrupted => 130,
        }
    }
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    the run passed
  1    a stage failed (or was skipped because a stage it needs failed)
  2    no stage failed, but a gate was inconclusive
  3    invalid pipeline.toml or command-line usage
  4    a plugin could not be loaded or verified (digest, imports, compile)
  5    internal or environment error (I/O, run records, engine)
  130  interrupted (Ctrl-C, SIGINT, SIGTERM)";
