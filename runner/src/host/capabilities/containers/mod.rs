//! The `containers` capability: a Docker engine (through bollard), scoped to
//! the project a stage is granted (`grants.containers = { project = … }`).
//!
//! Every object a stage creates carries the label `valero.project=<project>`
//! and a scoped name; every object a stage refers to is looked up and its
//! label checked before anything is done to it. The dangerous knobs
//! (privileged, cap-add, host network/PID, bind mounts outside the grant,
//! ports off loopback) are refused in [`policy`]; build contexts are tarred
//! here on the host from granted directories ([`context`]).

pub mod context;
pub mod persistent;
pub mod policy;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, EndpointSettings,
    HealthConfig, HealthStatusEnum, HostConfig, Mount, MountType, NetworkCreateRequest,
    NetworkingConfig, PortBinding as DockerPortBinding, RestartPolicy as DockerRestart,
    RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use futures_util::future::{BoxFuture, FutureExt};

use crate::effects::{Effect, EffectLog};
use crate::host::bindings::valero::stage::containers::{
    self, ContainerInfo, ContainerSpec, ContainerState, HealthStatus, Removed, RestartPolicy,
};
use crate::host::log::StageLog;
use crate::pipeline::ContainerGrant;
use crate::report::LogLevel;

use policy::{PROJECT_LABEL, not_owned, owned, refused};

/// What `container-logs` returns at most (the end of the output).
const MAX_LOG_BYTES: usize = 64 * 1024;
/// Engine requests may take this long (builds); the stage's own timeout is shorter.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(3600);

/// One stage attempt's access to the engine.
pub struct ContainerSession {
    grant: ContainerGrant,
    base_dir: PathBuf,
    docker: Option<Docker>,
    /// Build output goes to the stage log like the plugin's own lines.
    log: StageLog,
    /// Containers and images the stage leaves behind (persistent effects).
    effects: EffectLog,
}

type R<T> = Result<T, String>;

fn engine_error(what: &str, e: bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError { message, .. } => format!("{what}: {message}"),
        // The engine stopped, restarted or its socket went away: say so
        // rather than the HTTP client's words.
        E::HyperLegacyError { .. }
        | E::HyperResponseError { .. }
        | E::IOError { .. }
        | E::SocketNotFoundError(_)
        | E::RequestTimeoutError => format!(
            "{what}: the Docker engine cannot be reached (it stopped, or its socket went away): {e}\n  help: check that dockerd is running (`docker version`); what this run made is in its records, and `valero cleanup RUN_ID` removes it once the engine is back"
        ),
        other => format!("{what}: {other}"),
    }
}

fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl ContainerSession {
    pub fn new(
        grant: ContainerGrant,
        base_dir: PathBuf,
        log: StageLog,
        effects: EffectLog,
    ) -> Self {
        ContainerSession {
            grant,
            base_dir,
            docker: None,
            log,
            effects,
        }
    }

    /// Records a container the stage created, started or looked at: a
    /// resumed run reuses the stage only while it is still there, unchanged.
    fn note_container(&self, c: &ContainerInspectResponse) {
        let config_hash = c
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(policy::CONFIG_HASH_LABEL).cloned());
        self.effects.record(Effect::Container {
            project: self.project().to_string(),
            name: c
                .name
                .as_deref()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            id: c.id.clone().unwrap_or_default(),
            config_hash,
        });
    }

    /// The stage removed container `id` (or, with `None`, everything of the project).
    fn forget(&self, id: Option<&str>) {
        let project = self.project().to_string();
        self.effects.forget(|e| match (e, id) {
            (Effect::Container { id: c, .. }, Some(id)) => c == id,
            (Effect::Container { project: p, .. } | Effect::Image { project: p, .. }, None) => {
                *p == project
            }
            _ => false,
        });
    }

    fn project(&self) -> &str {
        &self.grant.project
    }

    fn docker(&mut self) -> R<Docker> {
        if let Some(d) = &self.docker {
            return Ok(d.clone());
        }
        let d = Docker::connect_with_defaults()
            .map_err(|e| format!("cannot reach the Docker engine: {e}"))?
            .with_timeout(ENGINE_TIMEOUT);
        self.docker = Some(d.clone());
        Ok(d)
    }

    fn project_filter(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![format!("{PROJECT_LABEL}={}", self.project())],
        )])
    }

    // ------------------------------------------------------------ lookups

    /// Inspects `candidates` in order; the first that exists must carry the
    /// project's label (else a `project scope` refusal). `None`: none exists.
    async fn find<T>(
        &mut self,
        kind: &str,
        name: &str,
        candidates: Vec<String>,
        inspect: impl Fn(Docker, String) -> BoxFuture<'static, Result<T, bollard::errors::Error>>,
        labels: impl Fn(&T) -> Option<&HashMap<String, String>>,
    ) -> R<Option<(String, T)>> {
        let docker = self.docker()?;
        for candidate in candidates {
            match inspect(docker.clone(), candidate.clone()).await {
                Ok(found) => {
                    if !labels(&found).is_some_and(|l| owned(self.project(), l.iter())) {
                        return Err(not_owned(self.project(), kind, name));
                    }
                    return Ok(Some((candidate, found)));
                }
                Err(e) if not_found(&e) => continue,
                Err(e) => return Err(engine_error(&format!("inspecting {kind} `{name}`"), e)),
            }
        }
        Ok(None)
    }

    /// The project's container `name` (short, scoped or id).
    async fn container(&mut self, name: &str) -> R<ContainerInspectResponse> {
        let candidates = policy::candidates(self.project(), name);
        let inspect =
            |d: Docker, c: String| async move { d.inspect_container(&c, None).await }.boxed();
        match self
            .find("container", name, candidates, inspect, |c| {
                c.config.as_ref()?.labels.as_ref()
            })
            .await?
        {
            Some((_, c)) => Ok(c),
            None => Err(format!(
                "container `{name}` not found in project `{}`",
                self.project()
            )),
        }
    }

    /// The project's image `image` (short or scoped tag, or id) -> the
    /// reference to use and the image's id.
    async fn image(&mut self, image: &str) -> R<(String, String)> {
        let candidates = policy::image_candidates(self.project(), image);
        let inspect = |d: Docker, c: String| async move { d.inspect_image(&c).await }.boxed();
        match self
            .find("image", image, candidates, inspect, |i| {
                i.config.as_ref()?.labels.as_ref()
            })
            .await?
        {
            Some((reference, i)) => {
                let id =
                    i.id.ok_or_else(|| format!("the engine reports no id for image `{image}`"))?;
                Ok((reference, id))
            }
            None => Err(format!(
                "image `{image}` not found in project `{}`\n  help: build it with `build-image`",
                self.project()
            )),
        }
    }

    /// The project's network `name` -> its full name.
    async fn network(&mut self, name: &str) -> R<Option<String>> {
        let candidates = policy::candidates(self.project(), name);
        let inspect =
            |d: Docker, c: String| async move { d.inspect_network(&c, None).await }.boxed();
        let found = self
            .find("network", name, candidates, inspect, |n| n.labels.as_ref())
            .await?;
        Ok(found.and_then(|(_, n)| n.name.or(n.id)))
    }

    /// The project's volume `name` -> its full name.
    async fn volume(&mut self, name: &str) -> R<Option<String>> {
        let candidates = policy::candidates(self.project(), name);
        let inspect = |d: Docker, c: String| async move { d.inspect_volume(&c).await }.boxed();
        let found = self
            .find("volume", name, candidates, inspect, |v| Some(&v.labels))
            .await?;
        Ok(found.map(|(_, v)| v.name))
    }

    // ------------------------------------------------------------ operations

    async fn build_image(
        &mut self,
        context_dir: &str,
        dockerfile: &str,
        tag: &str,
        build_args: &[(String, String)],
        labels: &[(String, String)],
    ) -> R<String> {
        let dir = policy::build_context(&self.grant, &self.base_dir, context_dir)?;
        let dockerfile = policy::dockerfile(dockerfile)?;
        let df_path = dir
            .join(&dockerfile)
            .canonicalize()
            .map_err(|e| format!("dockerfile `{dockerfile}` in {}: {e}", dir.display()))?;
        if !df_path.starts_with(&dir) {
            return Err(refused(
                "build contexts only from granted build_contexts",
                format!("dockerfile `{dockerfile}` resolves outside the context"),
            ));
        }
        let tag = policy::scoped_tag(self.project(), tag)?;
        let labels = policy::labels(self.project(), labels)?;
        let args: HashMap<String, String> = build_args.iter().cloned().collect();
        let docker = self.docker()?;
        let (tar_dir, tar_df) = (dir.clone(), dockerfile.clone());
        let tar = tokio::task::spawn_blocking(move || context::tar_context(&tar_dir, &tar_df))
            .await
            .map_err(|e| format!("tarring the build context: {e}"))??;
        self.log.line(
            LogLevel::Info,
            &format!(
                "building {tag} from {} ({} KiB context)",
                dir.display(),
                tar.len() / 1024
            ),
        );
        let opts = BuildImageOptionsBuilder::new()
            .dockerfile(&dockerfile)
            .t(&tag)
            .rm(true)
            .forcerm(true)
            .buildargs(&args)
            .labels(&labels)
            .build();
        let mut stream = docker.build_image(
            opts,
            None,
            Some(bollard::body_full(bytes::Bytes::from(tar))),
        );
        let mut id = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| engine_error(&format!("building {tag}"), e))?;
            if let Some(detail) = info.error_detail {
                return Err(format!(
                    "building {tag} failed: {}",
                    detail.message.unwrap_or_default()
                ));
            }
            if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                    self.log.line(LogLevel::Info, line);
                }
            }
            if let Some(img) = info.aux
                && img.id.is_some()
            {
                id = img.id;
            }
        }
        let id = match id {
            Some(id) => id,
            None => docker
                .inspect_image(&tag)
                .await
                .map_err(|e| engine_error(&format!("inspecting {tag} after the build"), e))?
                .id
                .ok_or_else(|| format!("the engine built {tag} but reports no id"))?,
        };
        self.effects.record(Effect::Image {
            project: self.project().to_string(),
            tag,
            id: id.clone(),
        });
        Ok(id)
    }

    async fn image_id(&mut self, image: &str) -> R<String> {
        Ok(self.image(image).await?.1)
    }

    async fn create_network(&mut self, name: &str) -> R<String> {
        policy::check_name("network", name)?;
        if let Some(existing) = self.network(name).await? {
            return Ok(existing);
        }
        let full = policy::scoped(self.project(), name);
        let labels = policy::labels(self.project(), &[])?;
        let docker = self.docker()?;
        docker
            .create_network(NetworkCreateRequest {
                name: full.clone(),
                driver: Some("bridge".into()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .map_err(|e| engine_error(&format!("creating network `{full}`"), e))?;
        Ok(full)
    }

    async fn create_volume(&mut self, name: &str) -> R<String> {
        policy::check_name("volume", name)?;
        if let Some(existing) = self.volume(name).await? {
            return Ok(existing);
        }
        let full = policy::scoped(self.project(), name);
        let labels = policy::labels(self.project(), &[])?;
        let docker = self.docker()?;
        let v = docker
            .create_volume(VolumeCreateRequest {
                name: Some(full.clone()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .map_err(|e| engine_error(&format!("creating volume `{full}`"), e))?;
        Ok(v.name)
    }

    async fn create_container(&mut self, spec: &ContainerSpec) -> R<String> {
        policy::check_name("container", &spec.name)?;
        policy::check_dangerous(spec)?;
        let mut mounts = Vec::new();
        for b in &spec.binds {
            let source = policy::bind_source(&self.grant, &self.base_dir, &b.host_path)?;
            mounts.push(Mount {
                typ: Some(MountType::BIND),
                source: Some(source.display().to_string()),
                target: Some(b.container_path.clone()),
                read_only: Some(b.read_only),
                ..Default::default()
            });
        }
        for v in &spec.volumes {
            let Some(volume) = self.volume(&v.volume).await? else {
                return Err(format!(
                    "volume `{}` not found in project `{}`\n  help: create it with `create-volume`",
                    v.volume,
                    self.project()
                ));
            };
            mounts.push(Mount {
                typ: Some(MountType::VOLUME),
                source: Some(volume),
                target: Some(v.container_path.clone()),
                read_only: Some(v.read_only),
                ..Default::default()
            });
        }
        let (image, _) = self.image(&spec.image).await?;
        let network = match &spec.network {
            None => None,
            Some(n) => Some(self.network(n).await?.ok_or_else(|| {
                format!(
                    "network `{n}` not found in project `{}`\n  help: create it with `create-network`",
                    self.project()
                )
            })?),
        };
        let mut labels = policy::labels(self.project(), &spec.labels)?;
        labels.insert(policy::CONFIG_HASH_LABEL.into(), policy::config_hash(spec));

        let mut port_bindings = HashMap::new();
        let mut exposed = Vec::new();
        for p in &spec.ports {
            let key = format!("{}/tcp", p.container_port);
            exposed.push(key.clone());
            port_bindings
                .entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(DockerPortBinding {
                    host_ip: Some(policy::LOOPBACK.into()),
                    host_port: Some(if p.host_port == 0 {
                        String::new()
                    } else {
                        p.host_port.to_string()
                    }),
                });
        }
        let ms_to_ns = |ms: u64| i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
        let healthcheck = spec.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: Some(ms_to_ns(h.interval_ms)),
            timeout: Some(ms_to_ns(h.timeout_ms)),
            retries: Some(i64::from(h.retries)),
            start_period: Some(ms_to_ns(h.start_period_ms)),
            ..Default::default()
        });
        let restart = match spec.restart {
            RestartPolicy::No => RestartPolicyNameEnum::NO,
            RestartPolicy::Always => RestartPolicyNameEnum::ALWAYS,
            RestartPolicy::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
            RestartPolicy::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
        };
        let network_mode = match (&network, spec.network_mode.as_str()) {
            (Some(n), _) => Some(n.clone()),
            (None, "") => None,
            (None, mode) => Some(mode.to_string()),
        };
        let networking_config = network.as_ref().map(|n| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                n.clone(),
                EndpointSettings {
                    aliases: (!spec.aliases.is_empty()).then(|| spec.aliases.clone()),
                    ..Default::default()
                },
            )])),
        });
        let body = ContainerCreateBody {
            image: Some(image),
            cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            labels: Some(labels),
            healthcheck,
            host_config: Some(HostConfig {
                privileged: Some(false),
                publish_all_ports: Some(false),
                port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
                mounts: (!mounts.is_empty()).then_some(mounts),
                network_mode,
                restart_policy: Some(DockerRestart {
                    name: Some(restart),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            networking_config,
            ..Default::default()
        };
        let full = policy::scoped(self.project(), &spec.name);
        let docker = self.docker()?;
        let created = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(&full).build()),
                body,
            )
            .await
            .map_err(|e| engine_error(&format!("creating container `{full}`"), e))?;
        self.effects.record(Effect::Container {
            project: self.project().to_string(),
            name: full,
            id: created.id.clone(),
            config_hash: Some(policy::config_hash(spec)),
        });
        Ok(created.id)
    }

    async fn start(&mut self, name: &str) -> R<()> {
        let container = self.container(name).await?;
        let id = container.id.clone().unwrap_or_default();
        let docker = self.docker()?;
        docker
            .start_container(&id, None)
            .await
            .map_err(|e| engine_error(&format!("starting container `{name}`"), e))?;
        self.note_container(&container);
        Ok(())
    }

    async fn stop(&mut self, name: &str, timeout_secs: u32) -> R<()> {
        let id = self.container(name).await?.id.unwrap_or_default();
        let docker = self.docker()?;
        let t = i32::try_from(timeout_secs).unwrap_or(i32::MAX);
        docker
            .stop_container(&id, Some(StopContainerOptionsBuilder::new().t(t).build()))
            .await
            .map_err(|e| engine_error(&format!("stopping container `{name}`"), e))
    }

    async fn remove_container(&mut self, name: &str, force: bool) -> R<()> {
        let id = self.container(name).await?.id.unwrap_or_default();
        self.forget(Some(&id));
        let docker = self.docker()?;
        docker
            .remove_container(
                &id,
                Some(
                    RemoveContainerOptionsBuilder::new()
                        .force(force)
                        .v(true)
                        .build(),
                ),
            )
            .await
            .map_err(|e| engine_error(&format!("removing container `{name}`"), e))
    }

    async fn inspect(&mut self, name: &str) -> R<ContainerInfo> {
        let container = self.container(name).await?;
        self.note_container(&container);
        Ok(info(container))
    }

    async fn logs(&mut self, name: &str, tail: u32) -> R<String> {
        let id = self.container(name).await?.id.unwrap_or_default();
        let docker = self.docker()?;
        let opts = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let mut stream = docker.logs(&id, Some(opts));
        let mut out: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| engine_error(&format!("logs of `{name}`"), e))?;
            out.extend_from_slice(chunk.as_ref());
            if out.len() > 2 * MAX_LOG_BYTES {
                out.drain(..out.len() - MAX_LOG_BYTES);
            }
        }
        if out.len() > MAX_LOG_BYTES {
            out.drain(..out.len() - MAX_LOG_BYTES);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    async fn list(&mut self) -> R<Vec<ContainerInfo>> {
        let docker = self.docker()?;
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&self.project_filter())
            .build();
        let summaries = docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| engine_error("listing containers", e))?;
        let mut out = Vec::new();
        for s in summaries {
            let Some(id) = s.id else { continue };
            match docker.inspect_container(&id, None).await {
                Ok(c) => out.push(info(c)),
                // Removed in between.
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(engine_error("inspecting a listed container", e)),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn remove_project(&mut self, with_images: bool) -> R<Removed> {
        self.forget(None);
        let docker = self.docker()?;
        let filters = self.project_filter();
        let mut removed = Removed {
            containers: vec![],
            networks: vec![],
            volumes: vec![],
            images: vec![],
        };
        let containers = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| engine_error("listing containers", e))?;
        for c in containers {
            let Some(id) = c.id else { continue };
            let name = c
                .names
                .and_then(|n| n.first().cloned())
                .unwrap_or_else(|| id.clone());
            match docker
                .remove_container(
                    &id,
                    Some(
                        RemoveContainerOptionsBuilder::new()
                            .force(true)
                            .v(true)
                            .build(),
                    ),
                )
                .await
            {
                Ok(()) => removed
                    .containers
                    .push(name.trim_start_matches('/').to_string()),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(engine_error(&format!("removing container {name}"), e)),
            }
        }
        let networks = docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(|e| engine_error("listing networks", e))?;
        for n in networks {
            let Some(id) = n.id else { continue };
            let name = n.name.unwrap_or_else(|| id.clone());
            match docker.remove_network(&id).await {
                Ok(()) => removed.networks.push(name),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(engine_error(&format!("removing network {name}"), e)),
            }
        }
        let volumes = docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(|e| engine_error("listing volumes", e))?;
        for v in volumes.volumes.unwrap_or_default() {
            match docker
                .remove_volume(
                    &v.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await
            {
                Ok(()) => removed.volumes.push(v.name),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(engine_error(&format!("removing volume {}", v.name), e)),
            }
        }
        if with_images {
            let images = docker
                .list_images(Some(
                    ListImagesOptionsBuilder::new().filters(&filters).build(),
                ))
                .await
                .map_err(|e| engine_error("listing images", e))?;
            for image in images {
                let name = image
                    .repo_tags
                    .first()
                    .cloned()
                    .unwrap_or_else(|| image.id.clone());
                let opts = RemoveImageOptionsBuilder::new().force(true).build();
                match docker.remove_image(&image.id, Some(opts), None).await {
                    Ok(_) => removed.images.push(name),
                    Err(e) if not_found(&e) => {}
                    Err(e) => return Err(engine_error(&format!("removing image {name}"), e)),
                }
            }
        }
        Ok(removed)
    }
}

fn info(c: ContainerInspectResponse) -> ContainerInfo {
    let state = c.state.unwrap_or_default();
    let labels = c
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let mut labels: Vec<(String, String)> = labels.into_iter().collect();
    labels.sort();
    let config_hash = labels
        .iter()
        .find(|(k, _)| k == policy::CONFIG_HASH_LABEL)
        .map(|(_, v)| v.clone());
    let status = match state.status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerStateStatusEnum::REMOVING) => ContainerState::Removing,
        Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited,
        Some(ContainerStateStatusEnum::DEAD) => ContainerState::Dead,
        _ => ContainerState::Unknown,
    };
    let health = match state.health.and_then(|h| h.status) {
        Some(HealthStatusEnum::STARTING) => HealthStatus::Starting,
        Some(HealthStatusEnum::HEALTHY) => HealthStatus::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => HealthStatus::Unhealthy,
        _ => HealthStatus::None,
    };
    let exit_code = matches!(status, ContainerState::Exited | ContainerState::Dead)
        .then_some(state.exit_code)
        .flatten();
    ContainerInfo {
        id: c.id.unwrap_or_default(),
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: c.config.and_then(|c| c.image).unwrap_or_default(),
        image_id: c.image.unwrap_or_default(),
        state: status,
        exit_code,
        health,
        labels,
        config_hash,
    }
}

impl ContainerSession {
    /// Errors cross into the guest masked: a secret passed as an env value or
    /// build arg must not come back in an engine message.
    fn masked<T>(&self, r: R<T>) -> R<T> {
        r.map_err(|e| self.log.io.masker.mask(&e).into_owned())
    }
}

/// Awaits one of the session's calls and masks its error text.
macro_rules! masked {
    ($self:ident, $call:expr) => {{
        let r = $call.await;
        Ok($self.masked(r))
    }};
}

impl containers::Host for ContainerSession {
    async fn project(&mut self) -> wasmtime::Result<String> {
        Ok(ContainerSession::project(self).to_string())
    }

    async fn build_image(
        &mut self,
        context_dir: String,
        dockerfile: String,
        tag: String,
        build_args: Vec<(String, String)>,
        labels: Vec<(String, String)>,
    ) -> wasmtime::Result<R<String>> {
        masked!(
            self,
            self.build_image(&context_dir, &dockerfile, &tag, &build_args, &labels)
        )
    }

    async fn image_id(&mut self, image: String) -> wasmtime::Result<R<String>> {
        masked!(self, self.image_id(&image))
    }

    async fn create_network(&mut self, name: String) -> wasmtime::Result<R<String>> {
        masked!(self, self.create_network(&name))
    }

    async fn create_volume(&mut self, name: String) -> wasmtime::Result<R<String>> {
        masked!(self, self.create_volume(&name))
    }

    async fn create_container(&mut self, spec: ContainerSpec) -> wasmtime::Result<R<String>> {
        masked!(self, self.create_container(&spec))
    }

    async fn start(&mut self, container: String) -> wasmtime::Result<R<()>> {
        masked!(self, self.start(&container))
    }

    async fn stop(&mut self, container: String, timeout_secs: u32) -> wasmtime::Result<R<()>> {
        masked!(self, self.stop(&container, timeout_secs))
    }

    async fn remove_container(
        &mut self,
        container: String,
        force: bool,
    ) -> wasmtime::Result<R<()>> {
        masked!(self, self.remove_container(&container, force))
    }

    async fn inspect_container(&mut self, container: String) -> wasmtime::Result<R<ContainerInfo>> {
        masked!(self, self.inspect(&container))
    }

    async fn container_logs(
        &mut self,
        container: String,
        tail: u32,
    ) -> wasmtime::Result<R<String>> {
        masked!(self, self.logs(&container, tail))
    }

    async fn list_containers(&mut self) -> wasmtime::Result<R<Vec<ContainerInfo>>> {
        masked!(self, self.list())
    }

    async fn config_hash(&mut self, spec: ContainerSpec) -> wasmtime::Result<String> {
        Ok(policy::config_hash(&spec))
    }

    async fn remove_project(&mut self, images: bool) -> wasmtime::Result<R<Removed>> {
        masked!(self, self.remove_project(images))
    }
}
