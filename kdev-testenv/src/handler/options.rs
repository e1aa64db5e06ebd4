//! The checks kube-apiserver's write handlers make of their options before anything else:
//! `ValidateCreateOptions`, `ValidateUpdateOptions` and `ValidatePatchOptions`
//! ([`apis/meta/v1/validation`](https://github.com/kubernetes/kubernetes/blob/master/staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go)).

use crate::patch::PatchType;
use crate::request::Query;
use crate::schema::{Cause, go_json_strings};
use crate::status::ApiError;

/// `FieldManagerMaxLength`: the longest `fieldManager`, in bytes.
const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// The write whose options are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Create,
    Update,
    /// A patch of this type (one the resource serves: kube-apiserver answers 415 for another
    /// before it reads the options).
    Patch(PatchType),
}

impl Write {
    fn options_kind(self) -> &'static str {
        match self {
            Write::Create => "CreateOptions",
            Write::Update => "UpdateOptions",
            Write::Patch(_) => "PatchOptions",
        }
    }
}

/// Refuses a write's options as kube-apiserver does, all causes at once and in its order: for a
/// patch `force` (apply only) or a missing `fieldManager` (apply needs one), then the
/// `fieldManager`'s length and characters, `dryRun` and `fieldValidation` (422 on
/// `CreateOptions.meta.k8s.io ""` and its kin).
pub(crate) fn validate(query: &Query, write: Write) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    let manager = query.str("fieldManager");
    match write {
        Write::Patch(PatchType::Apply) if manager.is_empty() => {
            causes.push(Cause::required("fieldManager", "is required for apply patch"));
        }
        Write::Patch(PatchType::Apply) => {}
        Write::Patch(_) if query.get("force").is_some() => {
            causes.push(Cause::forbidden("force", "may not be specified for non-apply patch"));
        }
        _ => {}
    }
    causes.extend(field_manager(manager));
    causes.extend(dry_run(query.get("dryRun").into_iter()));
    causes.extend(super::field_validation::parse(query.str("fieldValidation")).err());
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        kind: write.options_kind().into(),
        group: "meta.k8s.io".into(),
        name: String::new(),
        causes,
    })
}

/// `ValidateDryRun`: every value `All` (the query's or `DeleteOptions`' `dryRun`).
pub(crate) fn dry_run<'a>(values: impl Iterator<Item = &'a str>) -> Option<Cause> {
    let values: Vec<&str> = values.collect();
    values.iter().any(|v| *v != "All").then(|| {
        // The bad value is the whole `[]string`, which kube prints as JSON.
        Cause::with_message(
            "FieldValueNotSupported",
            "dryRun",
            format!(
                "Unsupported value: {}: supported values: \"All\"",
                go_json_strings(&values)
            ),
        )
    })
}

/// `ValidateFieldManager`: at most 128 bytes, printable characters only.
fn field_manager(manager: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if manager.len() > FIELD_MANAGER_MAX_LENGTH {
        causes.push(Cause::too_long("fieldManager", FIELD_MANAGER_MAX_LENGTH as i64));
    }
    for (at, c) in manager.char_indices().filter(|(_, c)| !printable(*c)) {
        causes.push(Cause::invalid_str(
            "fieldManager",
            manager,
            &format!("invalid character U+{:04X} (at position {at})", c as u32),
        ));
    }
    causes
}

/// Go's `unicode.IsPrint`, near enough: no control, format or separator characters but the
/// ASCII space.
fn printable(c: char) -> bool {
    c == ' '
        || !(c.is_control()
            || c.is_whitespace()
            || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Query {
        let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Query::parse(Some(&text.join("&")))
    }

    fn refused(q: &[(&str, &str)], write: Write) -> String {
        validate(&query(q), write).expect_err("refused").to_string()
    }

    #[test]
    fn force_is_for_apply_patches_only() {
        for t in [PatchType::Json, PatchType::Merge, PatchType::StrategicMerge] {
            for value in ["true", "false"] {
                assert_eq!(
                    refused(&[("force", value)], Write::Patch(t)),
                    "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
                );
            }
        }
        let apply = query(&[("force", "true"), ("fieldManager", "m")]);
        assert!(validate(&apply, Write::Patch(PatchType::Apply)).is_ok());
        assert_eq!(
            refused(&[], Write::Patch(PatchType::Apply)),
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
    }

    #[test]
    fn a_field_manager_is_at_most_128_printable_bytes_for_every_write() {
        let long = "m".repeat(129);
        for (write, kind) in [
            (Write::Create, "CreateOptions"),
            (Write::Update, "UpdateOptions"),
            (Write::Patch(PatchType::Merge), "PatchOptions"),
            (Write::Patch(PatchType::Apply), "PatchOptions"),
        ] {
            assert_eq!(
                refused(&[("fieldManager", &long)], write),
                format!("{kind}.meta.k8s.io \"\" is invalid: fieldManager: Too long: may not be more than 128 bytes")
            );
        }
        assert!(validate(&query(&[("fieldManager", &"m".repeat(128))]), Write::Create).is_ok());
        assert_eq!(
            refused(&[("fieldManager", "a%07b")], Write::Create),
            "CreateOptions.meta.k8s.io \"\" is invalid: fieldManager: Invalid value: \"a\\ab\": invalid character \
             U+0007 (at position 1)"
        );
    }

    #[test]
    fn every_cause_is_reported_in_kube_apiservers_order() {
        let err = validate(
            &query(&[("force", "1"), ("dryRun", "x"), ("fieldValidation", "y")]),
            Write::Patch(PatchType::Json),
        )
        .unwrap_err();
        let ApiError::Invalid { causes, .. } = err else {
            panic!("{err:?}")
        };
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["force", "dryRun", "fieldValidation"]);
    }
}
