//! Stage plugin `build-images`: builds one container image per service from a
//! granted build context, through the `containers` capability.
//!
//! ```toml
//! [stages.images]
//! plugin = "builtin:build-images"
//! with = { context = "target/neuroerp-image", version = "1.0.0",
//!          services = ["event-bus", "crm-service"],
//!          build_args = { SERVICE = "{service}" },
//!          source_file = "target/neuroerp-image/source" }
//! grants = { containers = { project = "neuroerp-dev", build_contexts = ["target/neuroerp-image"] },
//!            fs = { read = ["target/neuroerp-image"] } }
//! ```
//!
//! - One image per service, tagged `<service>:<version>` (the host scopes it
//!   to `<project>/<service>:<version>`), from `dockerfile` (default
//!   `Dockerfile`) in `context`. `{service}` and `{version}` in `build_args`
//!   values are replaced, so one shared Dockerfile serves every service.
//! - OCI labels: `org.opencontainers.image.{title,version,revision,created}`.
//!   `revision` and `created` come from `revision`/`created`, or else from
//!   `source_file` (one line `<revision> <RFC 3339 time>`, e.g. written by
//!   `git log -1 --format='%H %cI'`). They are not the build time on purpose:
//!   the same sources then give the same image id, so a deploy that follows
//!   changes nothing.
//! - Build output streams to the stage log (by the host). One check per image.
//! - Outputs `{"version": …, "images": {"<service>": {"tag": …, "id": "sha256:…"}}}`.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use valero_sdk::containers;
use valero_sdk::{Check, Plugin, Report, log};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Build context directory, relative to pipeline.toml (granted `build_contexts`).
    context: String,
    /// Dockerfile inside the context.
    #[serde(default)]
    dockerfile: String,
    version: String,
    services: Vec<String>,
    #[serde(default)]
    build_args: BTreeMap<String, String>,
    #[serde(default)]
    revision: Option<String>,
    #[serde(default)]
    created: Option<String>,
    /// `<revision> <created>` in one line; needs an `fs.read` grant.
    #[serde(default)]
    source_file: Option<String>,
}

/// What the OCI labels say about the sources.
struct Source {
    revision: String,
    created: String,
}

/// `created` when nothing says better: the epoch, as reproducible builds do.
const UNKNOWN_CREATED: &str = "1970-01-01T00:00:00Z";

impl Source {
    fn from_config(config: &Config) -> Result<Source, String> {
        let (mut revision, mut created) = (None, None);
        if let Some(file) = &config.source_file {
            let text = std::fs::read_to_string(file).map_err(|e| {
                format!(
                    "source_file `{file}`: {e}\n  help: grant it with fs = {{ read = [\"{file}\"] }} and make sure the build job writes it"
                )
            })?;
            let mut words = text.split_whitespace();
            revision = words.next().map(str::to_string);
            created = words.next().map(str::to_string);
        }
        Ok(Source {
            revision: config
                .revision
                .clone()
                .or(revision)
                .unwrap_or_else(|| "unknown".into()),
            created: config
                .created
                .clone()
                .or(created)
                .unwrap_or_else(|| UNKNOWN_CREATED.into()),
        })
    }
}

fn expand(template: &str, service: &str, version: &str) -> String {
    template
        .replace("{service}", service)
        .replace("{version}", version)
}

struct BuildImages;

impl Plugin for BuildImages {
    fn run() -> Report {
        let config: Config = match valero_sdk::config() {
            Ok(config) => config,
            Err(e) => return Report::fail(e),
        };
        if config.services.is_empty() {
            return Report::fail("`services` is empty: name the services to build an image for");
        }
        let source = match Source::from_config(&config) {
            Ok(source) => source,
            Err(e) => return Report::fail(e),
        };
        let project = containers::project();
        let total = config.services.len() as u64;
        let mut images = Map::new();
        let mut checks = Vec::new();
        for (i, service) in config.services.iter().enumerate() {
            log::progress(i as u64, total, format!("image {service}"));
            let (check, image) = build_one(&config, &source, &project, service);
            if let Some(image) = image {
                images.insert(service.clone(), image);
            }
            checks.push(check);
        }
        log::progress(total, total, "done");
        let built = images.len();
        Report::from_checks(
            format!("{built}/{total} images built for project {project}"),
            checks,
        )
        .outputs(json!({ "version": config.version, "images": images }))
    }
}

fn build_one(
    config: &Config,
    source: &Source,
    project: &str,
    service: &str,
) -> (Check, Option<Value>) {
    let start = Instant::now();
    let tag = format!("{service}:{}", config.version);
    let args: Vec<(String, String)> = config
        .build_args
        .iter()
        .map(|(k, v)| (k.clone(), expand(v, service, &config.version)))
        .collect();
    let labels: Vec<(String, String)> = [
        ("title", service),
        ("version", config.version.as_str()),
        ("revision", source.revision.as_str()),
        ("created", source.created.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("org.opencontainers.image.{k}"), v.to_string()))
    .collect();
    let name = format!("image {tag}");
    match containers::build_image(&config.context, &config.dockerfile, &tag, &args, &labels) {
        Ok(id) => {
            let scoped = format!("{project}/{tag}");
            let check = Check::pass(name)
                .message(format!("built {scoped} ({id})"))
                .evidence("tag", &scoped)
                .evidence("id", &id)
                .evidence("revision", &source.revision)
                .duration(start.elapsed());
            (check, Some(json!({ "tag": scoped, "id": id })))
        }
        Err(e) => (Check::fail(name).message(e).duration(start.elapsed()), None),
    }
}

valero_sdk::export_plugin!(BuildImages);
