//! What a stage's containers and images look like after its run ended: for
//! `--resume` (is an effect still in place, so the stage can be reused?) and
//! for `valero cleanup` (what did an interrupted run leave, and remove it).
//!
//! Only objects carrying the project's label are ever looked at or removed,
//! the same scope the capability itself keeps.

use std::time::Duration;

use bollard::Docker;
use bollard::models::ContainerStateStatusEnum;
use bollard::query_parameters::{RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder};

use super::{engine_error, not_found, policy};
use crate::effects::Effect;

/// Checks are quick engine calls; a hung engine must not hang `valero run`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// Where an effect stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// There, unchanged (containers: same id, running, same config hash).
    InPlace,
    /// Gone or changed, and why (`container x is gone`).
    Gone(String),
}

/// A connection for checks, or why there is none.
pub fn engine() -> Result<Docker, String> {
    Docker::connect_with_defaults()
        .map(|d| d.with_timeout(CHECK_TIMEOUT))
        .map_err(|e| format!("cannot reach the Docker engine: {e}"))
}

/// Where a persistent effect stands. `Err`: the engine could not say.
pub async fn standing(docker: &Docker, effect: &Effect) -> Result<Standing, String> {
    match effect {
        Effect::Service { .. } => Ok(Standing::Gone(format!(
            "{} ended with the previous run",
            effect.describe()
        ))),
        Effect::Container {
            project,
            name,
            id,
            config_hash,
        } => {
            let c = match docker.inspect_container(id, None).await {
                Ok(c) => c,
                Err(e) if not_found(&e) => {
                    return Ok(Standing::Gone(format!("container `{name}` is gone")));
                }
                Err(e) => return Err(engine_error(&format!("checking container `{name}`"), e)),
            };
            let labels = c.config.as_ref().and_then(|c| c.labels.clone());
            let labels = labels.unwrap_or_default();
            if !policy::owned(project, labels.iter()) {
                return Ok(Standing::Gone(format!(
                    "container `{name}` is no longer in project `{project}`"
                )));
            }
            let running =
                c.state.as_ref().and_then(|s| s.status) == Some(ContainerStateStatusEnum::RUNNING);
            if !running {
                return Ok(Standing::Gone(format!(
                    "container `{name}` is no longer running"
                )));
            }
            if config_hash.is_some()
                && labels.get(policy::CONFIG_HASH_LABEL) != config_hash.as_ref()
            {
                return Ok(Standing::Gone(format!(
                    "container `{name}` was changed since (another configuration)"
                )));
            }
            Ok(Standing::InPlace)
        }
        Effect::Image { project, tag, id } => match docker.inspect_image(id).await {
            Ok(i) => {
                let labels = i.config.and_then(|c| c.labels).unwrap_or_default();
                Ok(if policy::owned(project, labels.iter()) {
                    Standing::InPlace
                } else {
                    Standing::Gone(format!("image `{tag}` is no longer in project `{project}`"))
                })
            }
            Err(e) if not_found(&e) => Ok(Standing::Gone(format!("image `{tag}` is gone"))),
            Err(e) => Err(engine_error(&format!("checking image `{tag}`"), e)),
        },
    }
}

/// Whether a container or image an effect names still exists in its
/// project (running or not): what an interrupted run left behind.
pub async fn present(docker: &Docker, effect: &Effect) -> Result<bool, String> {
    let labels = match effect {
        Effect::Service { .. } => return Ok(false),
        Effect::Container { id, name, .. } => match docker.inspect_container(id, None).await {
            Ok(c) => c.config.and_then(|c| c.labels),
            Err(e) if not_found(&e) => return Ok(false),
            Err(e) => return Err(engine_error(&format!("checking container `{name}`"), e)),
        },
        Effect::Image { id, tag, .. } => match docker.inspect_image(id).await {
            Ok(i) => i.config.and_then(|c| c.labels),
            Err(e) if not_found(&e) => return Ok(false),
            Err(e) => return Err(engine_error(&format!("checking image `{tag}`"), e)),
        },
    };
    Ok(policy::owned(
        project_of(effect),
        labels.unwrap_or_default().iter(),
    ))
}

fn project_of(effect: &Effect) -> &str {
    match effect {
        Effect::Container { project, .. } | Effect::Image { project, .. } => project,
        Effect::Service { .. } => "",
    }
}

/// Removes a container (with its anonymous volumes) or image an interrupted
/// run left; one already gone, or no longer the project's, is left alone.
pub async fn remove(docker: &Docker, effect: &Effect) -> Result<(), String> {
    if !present(docker, effect).await? {
        return Ok(());
    }
    let result = match effect {
        Effect::Service { .. } => return Ok(()),
        Effect::Container { id, .. } => {
            let opts = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            docker.remove_container(id, Some(opts)).await
        }
        Effect::Image { id, .. } => {
            let opts = RemoveImageOptionsBuilder::new().force(true).build();
            docker.remove_image(id, Some(opts), None).await.map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if not_found(&e) => Ok(()),
        Err(e) => Err(engine_error(&format!("removing {}", effect.describe()), e)),
    }
}
