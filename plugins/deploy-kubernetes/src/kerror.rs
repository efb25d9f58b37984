//! Words for the `kubernetes` capability's errors and changes: what went
//! wrong, where, and what to do. Formatting only (no host calls).

use valero_sdk::kubernetes::{Change, Error, FieldConflict, ObjectRef};

/// Changed-field paths that only record which run applied the object:
/// an object whose only change is one of these is unchanged for the user.
const BOOKKEEPING: &[&str] = &[crate::render::RUN_ID_ANNOTATION];

pub fn change_word(change: Change) -> &'static str {
    match change {
        Change::Created => "created",
        Change::Configured => "configured",
        Change::Unchanged => "unchanged",
    }
}

/// True when a `configured` object's changed fields are all bookkeeping.
pub fn bookkeeping_only(change: Change, changed_fields: &[String]) -> bool {
    change == Change::Configured
        && !changed_fields.is_empty()
        && changed_fields
            .iter()
            .all(|f| BOOKKEEPING.iter().any(|b| f.contains(b)))
}

/// `Kind/name in namespace ns` (or `Kind/name` for cluster-scoped objects).
pub fn describe_ref(object: &ObjectRef) -> String {
    if object.namespace.is_empty() {
        format!("{}/{}", object.kind, object.name)
    } else {
        format!(
            "{}/{} in namespace `{}`",
            object.kind, object.name, object.namespace
        )
    }
}

/// The error as a message; the conflict one says how to take fields over.
pub fn describe(error: &Error) -> String {
    match error {
        Error::NotGranted(r) => format!("not granted ({}): {}", r.rule, r.detail),
        Error::Refused(r) => format!("refused by host policy ({}): {}", r.rule, r.detail),
        Error::Conflict(conflicts) => describe_conflicts(conflicts),
        Error::NotFound(object) => format!("not found: {}", describe_ref(object)),
        Error::Invalid(causes) => {
            format!("rejected by the API server:\n  - {}", causes.join("\n  - "))
        }
        Error::Failed(message) => message.clone(),
    }
}

fn describe_conflicts(conflicts: &[FieldConflict]) -> String {
    // One line per manager, in the order the host reported them.
    let mut managers: Vec<(&str, Vec<&str>)> = Vec::new();
    for c in conflicts {
        match managers.iter_mut().find(|(m, _)| *m == c.manager) {
            Some((_, fields)) => fields.push(&c.field),
            None => managers.push((&c.manager, vec![&c.field])),
        }
    }
    let lines: Vec<String> = managers
        .iter()
        .map(|(manager, fields)| format!("  - manager `{manager}` owns {}", fields.join(", ")))
        .collect();
    format!(
        "conflict: fields owned by other field managers (nothing was changed):\n{}\n  help: set `force_conflicts = true` in `with` if valero should take these fields over; otherwise stop the other manager from setting them",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use valero_sdk::kubernetes::Refusal;

    #[test]
    fn conflicts_are_grouped_by_manager_with_the_way_out() {
        let e = Error::Conflict(vec![
            FieldConflict {
                manager: "kubectl-edit".into(),
                field: "spec.replicas".into(),
            },
            FieldConflict {
                manager: "helm".into(),
                field: "data.A".into(),
            },
            FieldConflict {
                manager: "kubectl-edit".into(),
                field: "spec.template.spec.containers[name=\"a\"].image".into(),
            },
        ]);
        let text = describe(&e);
        assert!(
            text.contains("manager `kubectl-edit` owns spec.replicas, spec.template"),
            "{text}"
        );
        assert!(text.contains("manager `helm` owns data.A"), "{text}");
        assert!(text.contains("force_conflicts = true"), "{text}");
    }

    #[test]
    fn other_errors() {
        let r = Refusal {
            rule: "namespace".into(),
            detail: "namespace `kube-system` is not granted".into(),
        };
        assert_eq!(
            describe(&Error::NotGranted(r)),
            "not granted (namespace): namespace `kube-system` is not granted"
        );
        assert_eq!(
            describe(&Error::Invalid(vec![
                "spec.replicas: must be >= 0".into(),
                "metadata.name: bad".into()
            ])),
            "rejected by the API server:\n  - spec.replicas: must be >= 0\n  - metadata.name: bad"
        );
        let o = ObjectRef {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: String::new(),
            name: "x".into(),
        };
        assert_eq!(describe(&Error::NotFound(o)), "not found: Namespace/x");
    }

    #[test]
    fn run_id_only_changes_are_bookkeeping() {
        let f = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(bookkeeping_only(
            Change::Configured,
            &f(&["metadata.annotations.valero.dev/run-id"])
        ));
        assert!(!bookkeeping_only(
            Change::Configured,
            &f(&["metadata.annotations.valero.dev/run-id", "spec.replicas"])
        ));
        assert!(!bookkeeping_only(Change::Configured, &[]));
        assert!(!bookkeeping_only(Change::Created, &[]));
    }
}
