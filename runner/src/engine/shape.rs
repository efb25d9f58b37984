//! What a component imports and exports, read from its bytes WITHOUT
//! compiling it. Compiling runs Cranelift over every function (a hostile
//! component can make that take minutes, see [`super::budget`]); reading the
//! import and export sections is linear in the size of the file. `validate`,
//! `plugin inspect` and the loader's checks before compiling use this.

use crate::pipeline::Capability;

/// The top-level imports and exports of a component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// Import names, e.g. `valero:stage/log@0.1.0`, `wasi:http/types@0.2.6`.
    pub imports: Vec<String>,
    pub exports: Vec<Export>,
}

/// One top-level export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub name: String,
    pub kind: ExportKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    Func,
    Instance,
    Other,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("not a WebAssembly component: {0}")]
    Malformed(String),
    #[error(
        "this is a core WebAssembly module, not a component\n  help: build the plugin for target wasm32-wasip2 (or wrap the module with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error(
        "the component does not export `run`, so it is not a stage plugin (it exports: {exports})\n  help: stage plugins implement the `valero:stage/stage` world (see wit/stage.wit)"
    )]
    NoRun { exports: String },
}

impl Shape {
    /// Reads the top-level import and export sections of `bytes`.
    pub fn read(bytes: &[u8]) -> Result<Shape, ShapeError> {
        use wasmparser::{ComponentExternalKind, Encoding, Parser, Payload};
        let malformed = |e: wasmparser::BinaryReaderError| ShapeError::Malformed(e.to_string());
        let mut shape = Shape::default();
        // Nested modules and components have imports and exports of their
        // own; only those of the outermost component (depth 0) count.
        let mut depth = 0usize;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(malformed)? {
                Payload::Version { encoding, .. } if depth == 0 && encoding == Encoding::Module => {
                    return Err(ShapeError::CoreModule);
                }
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentImportSection(reader) if depth == 0 => {
                    for import in reader {
                        shape
                            .imports
                            .push(import.map_err(malformed)?.name.name.to_string());
                    }
                }
                Payload::ComponentExportSection(reader) if depth == 0 => {
                    for export in reader {
                        let export = export.map_err(malformed)?;
                        shape.exports.push(Export {
                            name: export.name.name.to_string(),
                            kind: match export.kind {
                                ComponentExternalKind::Func => ExportKind::Func,
                                ComponentExternalKind::Instance => ExportKind::Instance,
                                _ => ExportKind::Other,
                            },
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(shape)
    }

    /// Reads `bytes` and checks that it can be a stage plugin: a component
    /// that exports the `run` function.
    pub fn of_stage_plugin(bytes: &[u8]) -> Result<Shape, ShapeError> {
        let shape = Shape::read(bytes)?;
        let has_run = shape
            .exports
            .iter()
            .any(|e| e.name == "run" && e.kind == ExportKind::Func);
        if !has_run {
            let exports: Vec<String> = shape.exports.iter().map(Export::describe).collect();
            return Err(ShapeError::NoRun {
                exports: if exports.is_empty() {
                    "nothing".into()
                } else {
                    exports.join(", ")
                },
            });
        }
        Ok(shape)
    }

    /// The capability imports that `granted` does not cover, in import order.
    pub fn ungranted<'a>(
        &'a self,
        granted: &'a std::collections::BTreeSet<Capability>,
    ) -> impl Iterator<Item = (&'a str, Capability)> + 'a {
        self.imports.iter().filter_map(move |name| {
            let cap = capability_of(name)?;
            (!granted.contains(&cap)).then_some((name.as_str(), cap))
        })
    }
}

impl Export {
    /// `func run`, `instance wasi:…`, as `plugin inspect` lists them.
    pub fn describe(&self) -> String {
        match self.kind {
            ExportKind::Func => format!("func {}", self.name),
            ExportKind::Instance => format!("instance {}", self.name),
            ExportKind::Other => self.name.clone(),
        }
    }
}

/// `valero:stage/processes@0.1.x` → `Capability::Processes`.
pub fn capability_of(import: &str) -> Option<Capability> {
    let rest = import.strip_prefix("valero:stage/")?;
    let iface = rest.split('@').next().unwrap_or(rest);
    Capability::ALL.into_iter().find(|c| c.name() == iface)
}

/// The line of pipeline.toml that grants `cap`, in the form `validate`
/// accepts (`containers` needs a project, the others take `true`).
pub fn grant_example(cap: Capability) -> &'static str {
    match cap {
        Capability::Containers => "containers = { project = \"…\" }",
        Capability::Processes => "processes = true",
        Capability::Databases => "databases = true",
        Capability::Kubernetes => "kubernetes = true",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component with one nested core module and the given top-level exports
    /// of instance-free functions is hard to hand-assemble; these tests use
    /// the smallest inputs that exercise each refusal.
    #[test]
    fn a_core_module_is_not_a_component() {
        let module = wasm_encoder::Module::new().finish();
        assert_eq!(Shape::read(&module), Err(ShapeError::CoreModule));
    }

    #[test]
    fn a_component_without_run_is_refused_before_compiling() {
        let component = wasm_encoder::Component::new().finish();
        let err = Shape::of_stage_plugin(&component).unwrap_err();
        assert!(
            matches!(&err, ShapeError::NoRun { exports } if exports == "nothing"),
            "{err}"
        );
        assert!(err.to_string().contains("does not export `run`"));
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            Shape::read(b"not wasm at all"),
            Err(ShapeError::Malformed(_))
        ));
    }

    #[test]
    fn grant_examples_are_what_validate_accepts() {
        assert_eq!(
            grant_example(Capability::Containers),
            "containers = { project = \"…\" }"
        );
        for cap in Capability::ALL {
            assert!(grant_example(cap).starts_with(cap.name()));
        }
    }
}
