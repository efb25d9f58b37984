//! How long one attempt may run, and which limit that is.
//!
//! An attempt is bounded by its stage's `timeout` and by what is left of the
//! pipeline deadline (`always` stages by their timeout alone). Both are kept,
//! so a timed-out attempt says which one ended it and where to raise it.

use std::time::Duration;

/// Which limit bounds an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `[stages.NAME] timeout`.
    StageTimeout,
    /// What was left of `[pipeline] timeout`.
    PipelineDeadline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptLimit {
    stage_timeout: Duration,
    /// What is left of the pipeline deadline; `None` for `always` stages,
    /// which may run past it.
    deadline_left: Option<Duration>,
}

impl AttemptLimit {
    pub fn new(stage_timeout: Duration, deadline_left: Option<Duration>) -> Self {
        AttemptLimit {
            stage_timeout,
            deadline_left,
        }
    }

    /// The time the attempt gets.
    pub fn duration(&self) -> Duration {
        self.deadline_left
            .map_or(self.stage_timeout, |left| left.min(self.stage_timeout))
    }

    /// The limit that bounds it: the stage timeout when both are equal.
    pub fn bound_by(&self) -> Limit {
        match self.deadline_left {
            Some(left) if left < self.stage_timeout => Limit::PipelineDeadline,
            _ => Limit::StageTimeout,
        }
    }

    /// What a timed-out attempt's report says, with where to raise the limit.
    pub fn timed_out(&self, stage: &str, pipeline_timeout: Duration) -> String {
        let after = humantime::format_duration(self.duration());
        match self.bound_by() {
            Limit::StageTimeout => format!(
                "timed out after {after}: the stage's timeout\n  help: raise `timeout` in [stages.{stage}] (now {}) if the stage needs longer",
                humantime::format_duration(self.stage_timeout)
            ),
            Limit::PipelineDeadline => format!(
                "timed out after {after}: the pipeline deadline was reached (the stage's own timeout is {})\n  help: raise `timeout` in [pipeline] (now {}) if the run needs longer",
                humantime::format_duration(self.stage_timeout),
                humantime::format_duration(pipeline_timeout)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_stage_timeout_bounds_when_the_deadline_is_further() {
        let l = AttemptLimit::new(S(30), Some(S(300)));
        assert_eq!(l.duration(), S(30));
        assert_eq!(l.bound_by(), Limit::StageTimeout);
        let m = l.timed_out("deploy", S(600));
        assert!(
            m.starts_with("timed out after 30s: the stage's timeout"),
            "{m}"
        );
        assert!(m.contains("[stages.deploy] (now 30s)"), "{m}");
    }

    #[test]
    fn the_deadline_bounds_when_less_is_left_than_the_timeout() {
        let l = AttemptLimit::new(S(30), Some(S(12)));
        assert_eq!(l.duration(), S(12));
        assert_eq!(l.bound_by(), Limit::PipelineDeadline);
        let m = l.timed_out("deploy", S(600));
        assert!(m.contains("the pipeline deadline was reached"), "{m}");
        assert!(m.contains("own timeout is 30s"), "{m}");
        assert!(m.contains("[pipeline] (now 10m)"), "{m}");
    }

    #[test]
    fn equal_limits_name_the_stage_timeout() {
        assert_eq!(
            AttemptLimit::new(S(5), Some(S(5))).bound_by(),
            Limit::StageTimeout
        );
    }

    #[test]
    fn always_stages_are_bounded_by_their_timeout_alone() {
        let l = AttemptLimit::new(S(30), None);
        assert_eq!(l.duration(), S(30));
        assert_eq!(l.bound_by(), Limit::StageTimeout);
    }

    #[test]
    fn a_passed_deadline_leaves_no_time() {
        let l = AttemptLimit::new(S(30), Some(Duration::ZERO));
        assert_eq!(l.duration(), Duration::ZERO);
        assert_eq!(l.bound_by(), Limit::PipelineDeadline);
    }
}
