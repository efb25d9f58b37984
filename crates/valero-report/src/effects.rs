//! Effects: what a stage left in the world through a host capability, and
//! whether it outlives the run.
//!
//! A fingerprint says whether a stage's *inputs* changed; it cannot say
//! whether its *effects* still exist. So each capability records what a
//! stage did with it (a service started, a container deployed, an image
//! built) and declares the effect's lifetime here, where plugins have no say:
//! a resumed run never reuses a stage whose effects died with the previous
//! run, and checks persistent ones before reusing it (see [`crate::resume`]).

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// One thing a stage did that outlasts its attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    /// A service of the `processes` capability: it runs in the runner's
    /// process tree, so it ends with the run (or with the runner).
    Service { name: String },
    /// A container of the `containers` capability that the stage created,
    /// started or inspected, as it was then.
    Container {
        project: String,
        name: String,
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config_hash: Option<String>,
    },
    /// An image the stage built through the `containers` capability.
    Image {
        project: String,
        tag: String,
        id: String,
    },
}

/// How long an effect lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifetime {
    /// Ends with the run: a resumed run must do it again.
    Run,
    /// Outlives the runner: a resumed run may reuse it after checking it is
    /// still there, and a crashed run may leave it behind.
    Persistent,
}

impl Effect {
    /// Declared by the capability, per kind of effect.
    pub fn lifetime(&self) -> Lifetime {
        match self {
            Effect::Service { .. } => Lifetime::Run,
            Effect::Container { .. } | Effect::Image { .. } => Lifetime::Persistent,
        }
    }

    /// Two records of the same thing: the later one replaces the earlier.
    fn same_subject(&self, other: &Effect) -> bool {
        match (self, other) {
            (Effect::Service { name: a }, Effect::Service { name: b }) => a == b,
            (
                Effect::Container {
                    project: p1,
                    name: a,
                    ..
                },
                Effect::Container {
                    project: p2,
                    name: b,
                    ..
                },
            ) => p1 == p2 && a == b,
            (
                Effect::Image {
                    project: p1,
                    tag: a,
                    ..
                },
                Effect::Image {
                    project: p2,
                    tag: b,
                    ..
                },
            ) => p1 == p2 && a == b,
            _ => false,
        }
    }

    /// A short human description: `service web`, `container neuroerp-dev-api`.
    pub fn describe(&self) -> String {
        match self {
            Effect::Service { name } => format!("service `{name}`"),
            Effect::Container { name, .. } => format!("container `{name}`"),
            Effect::Image { tag, .. } => format!("image `{tag}`"),
        }
    }
}

/// An effect as recorded in a stage report: the effect and its lifetime
/// (written out so a reader of the records needs no table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEffect {
    pub lifetime: Lifetime,
    #[serde(flatten)]
    pub effect: Effect,
}

impl From<Effect> for RecordedEffect {
    fn from(effect: Effect) -> Self {
        RecordedEffect {
            lifetime: effect.lifetime(),
            effect,
        }
    }
}

/// The effects of one attempt, shared by the store (where capabilities add
/// to it) and the scheduler (which reads it even after a trap or timeout).
#[derive(Clone, Default)]
pub struct EffectLog(Arc<Mutex<Vec<Effect>>>);

impl EffectLog {
    /// Adds an effect, replacing an earlier record of the same thing.
    pub fn record(&self, effect: Effect) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|e| !e.same_subject(&effect));
        all.push(effect);
    }

    /// Drops the records `gone` matches (the stage removed those things).
    pub fn forget(&self, gone: impl Fn(&Effect) -> bool) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|e| !gone(e));
    }

    pub fn take(&self) -> Vec<Effect> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Merges an attempt's effects into a stage's (a later attempt's record of
/// the same thing replaces an earlier one).
pub fn merge(into: &mut Vec<RecordedEffect>, new: Vec<Effect>) {
    for effect in new {
        into.retain(|r| !r.effect.same_subject(&effect));
        into.push(effect.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_end_with_the_run_and_containers_and_images_persist() {
        let service = Effect::Service { name: "web".into() };
        let container = Effect::Container {
            project: "p".into(),
            name: "p-web".into(),
            id: "c1".into(),
            config_hash: Some("h".into()),
        };
        let image = Effect::Image {
            project: "p".into(),
            tag: "p/web:1".into(),
            id: "sha256:1".into(),
        };
        assert_eq!(service.lifetime(), Lifetime::Run);
        assert_eq!(container.lifetime(), Lifetime::Persistent);
        assert_eq!(image.lifetime(), Lifetime::Persistent);
        let json = serde_json::to_value(RecordedEffect::from(container.clone())).unwrap();
        assert_eq!(json["kind"], "container");
        assert_eq!(json["lifetime"], "persistent");
        let back: RecordedEffect = serde_json::from_value(json).unwrap();
        assert_eq!(back.effect, container);
    }

    #[test]
    fn a_later_record_of_the_same_thing_replaces_the_earlier() {
        let log = EffectLog::default();
        let c = |id: &str| Effect::Container {
            project: "p".into(),
            name: "p-web".into(),
            id: id.into(),
            config_hash: None,
        };
        log.record(c("old"));
        log.record(Effect::Service { name: "web".into() });
        log.record(c("new"));
        let mut stage = vec![RecordedEffect::from(c("first attempt"))];
        merge(&mut stage, log.take());
        let ids: Vec<String> = stage
            .iter()
            .map(|r| match &r.effect {
                Effect::Container { id, .. } => id.clone(),
                other => other.describe(),
            })
            .collect();
        assert_eq!(ids, ["service `web`", "new"]);
    }
}
