//! The host calls the deploy flow makes, behind a trait so the flow is
//! unit-tested natively against a fake cluster.

use std::time::Duration;

use valero_sdk::kubernetes::{
    self as k8s, Applied, ApplyOptions, Error, Event, ObjectRef, PodInfo, Rollout,
};
use valero_sdk::log;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// The `kubernetes` capability, the attempt's remaining time and the log.
pub trait Cluster {
    fn plan_only(&self) -> bool;
    fn remaining(&self) -> Duration;
    fn apply(&self, manifest: &str, options: ApplyOptions) -> Result<Applied, Error>;
    fn get(&self, object: &ObjectRef) -> Result<Option<String>, Error>;
    fn delete(&self, object: &ObjectRef) -> Result<bool, Error>;
    fn replace(&self, manifest: &str) -> Result<String, Error>;
    fn rollout_status(&self, namespace: &str, name: &str) -> Result<Rollout, Error>;
    fn wait_rollout(&self, namespace: &str, name: &str, timeout_ms: u32) -> Result<Rollout, Error>;
    fn events(&self, object: &ObjectRef, limit: u32) -> Result<Vec<Event>, Error>;
    fn pods(&self, namespace: &str, label_selector: &str) -> Result<Vec<PodInfo>, Error>;
    fn pod_logs(&self, namespace: &str, pod: &str, tail: u32) -> Result<String, Error>;
    fn log(&self, level: Level, message: &str);
    fn progress(&self, done: u64, total: u64, label: &str);
}

/// The real host.
pub struct Host;

impl Cluster for Host {
    fn plan_only(&self) -> bool {
        k8s::plan_only()
    }
    fn remaining(&self) -> Duration {
        valero_sdk::remaining()
    }
    fn apply(&self, manifest: &str, options: ApplyOptions) -> Result<Applied, Error> {
        k8s::apply(manifest, options)
    }
    fn get(&self, object: &ObjectRef) -> Result<Option<String>, Error> {
        k8s::get(object)
    }
    fn delete(&self, object: &ObjectRef) -> Result<bool, Error> {
        k8s::delete(object)
    }
    fn replace(&self, manifest: &str) -> Result<String, Error> {
        k8s::replace(manifest)
    }
    fn rollout_status(&self, namespace: &str, name: &str) -> Result<Rollout, Error> {
        k8s::rollout_status(namespace, name)
    }
    fn wait_rollout(&self, namespace: &str, name: &str, timeout_ms: u32) -> Result<Rollout, Error> {
        k8s::wait_rollout(namespace, name, timeout_ms)
    }
    fn events(&self, object: &ObjectRef, limit: u32) -> Result<Vec<Event>, Error> {
        k8s::events(object, limit)
    }
    fn pods(&self, namespace: &str, label_selector: &str) -> Result<Vec<PodInfo>, Error> {
        k8s::pods(namespace, label_selector)
    }
    fn pod_logs(&self, namespace: &str, pod: &str, tail: u32) -> Result<String, Error> {
        k8s::pod_logs(namespace, pod, tail)
    }
    fn log(&self, level: Level, message: &str) {
        match level {
            Level::Info => log::info(message),
            Level::Warn => log::warn(message),
            Level::Error => log::error(message),
        }
    }
    fn progress(&self, done: u64, total: u64, label: &str) {
        log::progress(done, total, label);
    }
}
