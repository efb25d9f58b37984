//! `valero run --resume`: which stages of an earlier run can be reused.
//!
//! A passed stage is reused only when (1) its fingerprint is unchanged (same
//! plugin, config, grants, limits, target and inputs), (2) every stage it
//! needs was reused too, and (3) its effects still exist: effects that end
//! with the run (services) never do after a new runner starts, and
//! persistent ones (containers, images) are checked on the engine first.
//! Everything else runs again, with the reason in the report's `resume`.
//!
//! Also: what an interrupted run left behind that outlives the runner
//! ([`leftovers`]), for `valero run` to point at and `valero cleanup` to remove.

use std::collections::BTreeMap;
use std::path::Path;

use crate::effects::{Effect, Lifetime, RecordedEffect};
use crate::host::capabilities::containers::persistent::{self, Standing};
use crate::records::{self, RunState};
use crate::report::{ResumeNote, StageReport, StageStatus};

/// Why each previously passed stage cannot be reused because of its
/// effects (stages not named here: effects fine or none).
pub async fn check_effects(previous: &BTreeMap<String, StageReport>) -> BTreeMap<String, String> {
    let mut gone = BTreeMap::new();
    let mut engine = None;
    for (name, stage) in previous {
        if stage.status != StageStatus::Passed || stage.effects.is_empty() {
            continue;
        }
        let services: Vec<&str> = stage
            .effects
            .iter()
            .filter_map(|e| match &e.effect {
                Effect::Service { name } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        if !services.is_empty() {
            gone.insert(
                name.clone(),
                format!(
                    "runs again: its services ended with the previous run ({})",
                    services.join(", ")
                ),
            );
            continue;
        }
        if let Some(why) = check_persistent(&stage.effects, &mut engine).await {
            gone.insert(name.clone(), format!("runs again: {why}"));
        }
    }
    gone
}

/// The first persistent effect that is not in place, in words.
async fn check_persistent(
    effects: &[RecordedEffect],
    engine: &mut Option<Result<bollard::Docker, String>>,
) -> Option<String> {
    for recorded in effects {
        if recorded.lifetime != Lifetime::Persistent {
            continue;
        }
        let docker = match engine.get_or_insert_with(persistent::engine) {
            Ok(d) => d,
            Err(e) => {
                return Some(format!(
                    "its {} cannot be checked: {e}",
                    recorded.effect.describe()
                ));
            }
        };
        match persistent::standing(docker, &recorded.effect).await {
            Ok(Standing::InPlace) => {}
            Ok(Standing::Gone(why)) => return Some(why),
            Err(e) => {
                return Some(format!(
                    "its {} cannot be checked: {e}",
                    recorded.effect.describe()
                ));
            }
        }
    }
    None
}

/// What a resumed run does with one stage.
#[derive(Debug)]
pub enum Decision {
    /// The earlier report, marked reused.
    Reuse(Box<StageReport>),
    /// Run it; the note says why.
    Run(ResumeNote),
}

/// Decides for one stage of a resumed run. `effects_gone`: from
/// [`check_effects`]; `need_ran`: a stage it needs that ran again.
pub fn decide(
    previous: Option<&StageReport>,
    fingerprint: Option<&str>,
    effects_gone: Option<&str>,
    need_ran: Option<&str>,
) -> Decision {
    let run = |why: String| Decision::Run(ResumeNote { reused: false, why });
    let Some(prev) = previous else {
        return run("runs again: it never finished in the earlier session".into());
    };
    if prev.status != StageStatus::Passed {
        return run(format!(
            "runs again: it {} in the earlier session",
            describe(prev.status)
        ));
    }
    if fingerprint.is_none() || prev.fingerprint.as_deref() != fingerprint {
        return run(
            "runs again: its plugin, config, grants or inputs changed since it passed".into(),
        );
    }
    if let Some(need) = need_ran {
        return run(format!("runs again: it needs `{need}`, which runs again"));
    }
    if let Some(why) = effects_gone {
        return run(why.to_string());
    }
    let checked = prev
        .effects
        .iter()
        .filter(|e| e.lifetime == Lifetime::Persistent)
        .count();
    let mut why =
        "passed earlier with the same plugin digest, config, grants and inputs".to_string();
    if checked > 0 {
        why.push_str(&format!(
            "; its {checked} container(s)/image(s) were checked and are still in place"
        ));
    }
    let mut report = prev.clone();
    report.resume = Some(ResumeNote { reused: true, why });
    Decision::Reuse(Box::new(report))
}

pub fn describe(status: StageStatus) -> &'static str {
    match status {
        StageStatus::Passed => "passed",
        StageStatus::Failed => "failed",
        StageStatus::Inconclusive => "was inconclusive",
        StageStatus::Skipped => "was skipped",
        StageStatus::Cancelled => "was cancelled",
    }
}

/// What an interrupted run left that outlives the runner.
#[derive(Debug)]
pub struct Leftovers {
    pub run_id: String,
    pub effects: Vec<Effect>,
}

/// The persistent effects recorded by run `run_id` (containers, images),
/// whatever their stage's status, the later record of a thing winning.
pub fn recorded_effects(state_dir: &Path, run_id: &str) -> Result<Vec<Effect>, String> {
    let prev = records::load_previous(state_dir, run_id)?;
    let mut all: Vec<RecordedEffect> = Vec::new();
    for name in &prev.order {
        let effects = prev.stages[name].effects.iter().map(|e| e.effect.clone());
        crate::effects::merge(&mut all, effects.collect());
    }
    Ok(all
        .into_iter()
        .filter(|e| e.lifetime == Lifetime::Persistent)
        .map(|e| e.effect)
        .collect())
}

/// The previous run of `pipeline` under `state_dir`, when it was
/// interrupted and what it recorded still exists on the engine.
pub async fn leftovers(state_dir: &Path, pipeline: &str) -> Option<Leftovers> {
    // Run ids sort by their start second; within one, the start time (with
    // its fraction) decides. The newest few are enough.
    let previous = records::run_ids(state_dir)
        .iter()
        .take(10)
        .filter_map(|id| records::read_run(state_dir, id).ok())
        .filter(|r| r.report.pipeline == pipeline)
        .max_by(|a, b| {
            (&a.id[..a.id.len().min(16)], &a.report.started_at)
                .cmp(&(&b.id[..b.id.len().min(16)], &b.report.started_at))
        })?;
    if previous.state != RunState::Interrupted {
        return None;
    }
    let effects = recorded_effects(state_dir, &previous.id).ok()?;
    if effects.is_empty() {
        return None;
    }
    let docker = persistent::engine().ok()?;
    let mut left = Vec::new();
    for effect in effects {
        if persistent::present(&docker, &effect).await.unwrap_or(false) {
            left.push(effect);
        }
    }
    (!left.is_empty()).then_some(Leftovers {
        run_id: previous.id,
        effects: left,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed(fingerprint: &str, effects: Vec<Effect>) -> StageReport {
        let mut s = StageReport::not_run("deploy", "p".into(), StageStatus::Passed, None);
        s.fingerprint = Some(fingerprint.into());
        s.effects = effects.into_iter().map(Into::into).collect();
        s
    }

    fn why(d: Decision) -> String {
        match d {
            Decision::Run(note) => note.why,
            Decision::Reuse(r) => format!("reused: {}", r.resume.unwrap().why),
        }
    }

    #[tokio::test]
    async fn a_stage_that_started_services_runs_again() {
        let prev = BTreeMap::from([(
            "deploy".to_string(),
            passed("f", vec![Effect::Service { name: "web".into() }]),
        )]);
        let gone = check_effects(&prev).await;
        assert_eq!(
            gone["deploy"],
            "runs again: its services ended with the previous run (web)"
        );
        let d = decide(
            prev.get("deploy"),
            Some("f"),
            gone.get("deploy").map(String::as_str),
            None,
        );
        assert!(why(d).contains("its services ended with the previous run"));
    }

    #[test]
    fn a_stage_whose_need_ran_again_runs_again_too() {
        let prev = passed("f", vec![]);
        let d = decide(Some(&prev), Some("f"), None, Some("deploy"));
        assert_eq!(why(d), "runs again: it needs `deploy`, which runs again");
    }

    #[test]
    fn an_unchanged_stage_with_effects_in_place_is_reused() {
        let image = Effect::Image {
            project: "p".into(),
            tag: "p/web:1".into(),
            id: "sha256:1".into(),
        };
        let prev = passed("f", vec![image]);
        let d = decide(Some(&prev), Some("f"), None, None);
        assert_eq!(
            why(d),
            "reused: passed earlier with the same plugin digest, config, grants and inputs; its 1 container(s)/image(s) were checked and are still in place"
        );
        let d = decide(Some(&prev), Some("g"), None, None);
        assert!(why(d).contains("changed since it passed"));
        let d = decide(None, Some("f"), None, None);
        assert!(why(d).contains("never finished"));
    }
}
