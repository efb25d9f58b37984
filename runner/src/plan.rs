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
        let all: BTreeMap<String, Vec<String>> = self
            .stages
            .iter()
            .map(|s| (s.name.clone(), s.needs.clone()))
            .collect();
        self.stages.retain(|s| keep(&s.name));
        for s in &mut self.stages {
            let needs = needs_through(&s.needs, &keep, &|n| all.get(n).map(Vec::as_slice));
            s.dropped_needs
                .extend(s.needs.iter().filter(|n| !keep(n)).cloned());
            s.needs = needs.into_iter().map(str::to_string).collect();
        }
        Ok(self)
    }
}

impl Plan {
    pub fn stage(&self, name: &str) -> Option<&PlannedStage> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// The needs among the stages `kept` allows, looking through a need that is
/// not kept to its own needs: dropping a stage from a run keeps the order
/// around it (e.g. `api` still follows `health` when `databases` between
/// them does not run on the target).
fn needs_through<'a>(
    needs: &'a [String],
    kept: &dyn Fn(&str) -> bool,
    needs_of: &dyn Fn(&str) -> Option<&'a [String]>,
) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&str> = needs.iter().rev().map(String::as_str).collect();
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        if kept(n) {
            out.push(n);
        } else if let Some(below) = needs_of(n) {
            stack.extend(below.iter().rev().map(String::as_str));
        }
    }
    out
}

/// Plans `pipeline` for `target`. A stage runs on a target when its `when`
/// list is absent or names the target. A need on a stage that does not run
/// on the target is replaced by that stage's own needs, so one verification
/// stage can follow whichever deploy stage the target uses.
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
            let needs = needs_through(&stage.needs, &|n| selected.contains(n), &|n| {
                pipeline
                    .stages
                    .iter()
                    .find(|s| s.name == n)
                    .map(|s| s.needs.as_slice())
            });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Digest, LoadOptions, parse_str};

    fn pipeline() -> Pipeline {
        let text = r#"
[pipeline]
name = "p"
default_target = "local"
[targets.local]
[targets.dev]
[stages.deploy]
plugin = "builtin:x"
[stages.health]
plugin = "builtin:x"
needs = ["deploy"]
[stages.databases]
plugin = "builtin:x"
needs = ["health"]
when = ["local"]
[stages.api]
plugin = "builtin:x"
needs = ["databases"]
"#;
        let opts = LoadOptions {
            builtin_plugins: [("x".to_string(), Digest::of(b"x"))].into_iter().collect(),
            check_plugin_files: false,
        };
        parse_str(text, std::path::Path::new("pipeline.toml"), &opts).expect("valid")
    }

    fn needs(plan: &Plan, stage: &str) -> Vec<String> {
        plan.stage(stage)
            .map(|s| s.needs.clone())
            .unwrap_or_default()
    }

    #[test]
    fn a_need_on_a_stage_off_the_target_is_replaced_by_its_needs() {
        let local = plan(&pipeline(), "local").unwrap();
        assert_eq!(needs(&local, "api"), ["databases"]);
        let dev = plan(&pipeline(), "dev").unwrap();
        assert_eq!(needs(&dev, "api"), ["health"]);
        assert_eq!(dev.stage("api").unwrap().dropped_needs, ["databases"]);
        assert_eq!(dev.stage("api").unwrap().level, 2);
    }

    #[test]
    fn skipping_a_stage_keeps_the_order_around_it_and_only_runs_alone() {
        let sel = |only: &[&str], skip: &[&str]| Selection {
            only: only.iter().map(|s| s.to_string()).collect(),
            skip: skip.iter().map(|s| s.to_string()).collect(),
        };
        let skipped = plan(&pipeline(), "local")
            .unwrap()
            .select(&sel(&[], &["databases"]))
            .unwrap();
        assert_eq!(needs(&skipped, "api"), ["health"]);
        let alone = plan(&pipeline(), "local")
            .unwrap()
            .select(&sel(&["api"], &[]))
            .unwrap();
        assert_eq!(needs(&alone, "api"), Vec::<String>::new());
    }
}
