//! Planning: which stages run on a target, in which order, and what each
//! one waits for. Pure data in, pure data out.

use std::collections::{BTreeMap, BTreeSet};

use crate::pipeline::{Pipeline, Stage};

/// The stages selected for one run, in a topological order (file order
/// among stages that are ready at the same time).
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: String,
    pub stages: Vec<PlannedStage>,
    /// Stages of the pipeline that do not run on this target, with why.
    pub excluded: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct PlannedStage {
    /// Index into `Pipeline::stages`.
    pub index: usize,
    pub name: String,
    /// Needs among the planned stages.
    pub needs: Vec<String>,
    /// Needs dropped because that stage is not in this run (target or selection).
    pub dropped_needs: Vec<String>,
    /// Longest chain of needs below this stage (0 = no needs): stages of one
    /// level can run concurrently.
    pub level: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("unknown target `{target}`; the pipeline defines: {known}")]
    UnknownTarget { target: String, known: String },
    #[error("{flag} names unknown stage `{stage}`{hint}; stages on this target: {known}")]
    UnknownStage {
        flag: &'static str,
        stage: String,
        hint: String,
        known: String,
    },
}

/// `--only` / `--skip`: which planned stages to run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub only: Vec<String>,
    pub skip: Vec<String>,
}

impl Plan {
    /// Narrows the plan. Deselected stages are listed in `excluded`; needs on
    /// them are dropped (the stage runs without their outputs), which
    /// `valero plan` shows — so `--skip source` runs everything else, and
    /// `--only health` runs health alone against what is already deployed.
    pub fn select(mut self, sel: &Selection) -> Result<Plan, PlanError> {
        let known: Vec<String> = self.stages.iter().map(|s| s.name.clone()).collect();
        for (flag, names) in [("--only", &sel.only), ("--skip", &sel.skip)] {
            for name in names {
                if !known.contains(name) {
                    let hint = known
                        .iter()
                        .filter(|k| strsim::jaro_winkler(k, name) > 0.8)
                        .max_by(|a, b| {
                            strsim::jaro_winkler(a, name).total_cmp(&strsim::jaro_winkler(b, name))
                        })
                        .map(|k| format!(" (did you mean `{k}`?)"))
                        .unwrap_or_default();
                    return Err(PlanError::UnknownStage {
                        flag,
                        stage: name.clone(),
                        hint,
                        known: known.join(", "),
                    });
                }
            }
        }
        let keep = |name: &str| {
            (sel.only.is_empty() || sel.only.iter().any(|o| o == name))
                && !sel.skip.iter().any(|s| s == name)
        };
        for s in &self.stages {
            if !keep(&s.name) {
                let why = if sel.skip.contains(&s.name) {
                    "deselected with --skip"
                } else {
                    "not selected with --only"
                };
                self.excluded.push((s.name.clone(), why.to_string()));
            }
        }
        self.stages.retain(|s| keep(&s.name));
        for s in &mut self.stages {
            let (kept, dropped): (Vec<String>, Vec<String>) =
                s.needs.drain(..).partition(|n| keep(n));
            s.needs = kept;
            s.dropped_needs.extend(dropped);
        }
        Ok(self)
    }
}

impl Plan {
    pub fn stage(&self, name: &str) -> Option<&PlannedStage> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// Plans `pipeline` for `target`. A stage runs on a target when its `when`
/// list is absent or names the target. A need on a stage that does not run
/// on the target is dropped, so one verification stage can follow whichever
/// deploy stage the target uses.
pub fn plan(pipeline: &Pipeline, target: &str) -> Result<Plan, PlanError> {
    if !pipeline.targets.contains_key(target) {
        return Err(PlanError::UnknownTarget {
            target: target.to_string(),
            known: pipeline
                .targets
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let runs = |s: &Stage| s.when.as_ref().is_none_or(|w| w.contains(target));
    let selected: BTreeSet<&str> = pipeline
        .stages
        .iter()
        .filter(|s| runs(s))
        .map(|s| s.name.as_str())
        .collect();
    let excluded = pipeline
        .stages
        .iter()
        .filter(|s| !runs(s))
        .map(|s| {
            let when: Vec<&str> = s.when.iter().flatten().map(String::as_str).collect();
            (s.name.clone(), format!("runs only on: {}", when.join(", ")))
        })
        .collect();

    // Kahn's algorithm; validation guarantees the graph is acyclic.
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    let mut order = Vec::new();
    let mut remaining: Vec<(usize, &Stage)> = pipeline
        .stages
        .iter()
        .enumerate()
        .filter(|(_, s)| selected.contains(s.name.as_str()))
        .collect();
    while !remaining.is_empty() {
        let before = remaining.len();
        let mut i = 0;
        while i < remaining.len() {
            let (index, stage) = remaining[i];
            let needs: Vec<&str> = stage
                .needs
                .iter()
                .map(String::as_str)
                .filter(|n| selected.contains(n))
                .collect();
            if needs.iter().all(|n| level.contains_key(n)) {
                let lvl = needs.iter().map(|n| level[n] + 1).max().unwrap_or(0);
                level.insert(stage.name.as_str(), lvl);
                order.push(PlannedStage {
                    index,
                    name: stage.name.clone(),
                    needs: needs.iter().map(|n| n.to_string()).collect(),
                    dropped_needs: stage
                        .needs
                        .iter()
                        .filter(|n| !selected.contains(n.as_str()))
                        .cloned()
                        .collect(),
                    level: lvl,
                });
                remaining.remove(i);
            } else {
                i += 1;
            }
        }
        if remaining.len() == before {
            // Unreachable for a validated pipeline; keep going rather than loop.
            break;
        }
    }
    Ok(Plan {
        target: target.to_string(),
        stages: order,
        excluded,
    })
}
